"""Commands of a model's life: train, list, predict, promote, roll back, audit, status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from mlops.cli import render
from mlops.cli.base import JsonOpt, ProjectOpt, app, quiet_libraries, settings_for
from mlops.errors import UsageError
from mlops.settings import Settings, mask_url


@app.command()
def train(
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
    trials: Annotated[
        int | None,
        typer.Option(
            "--trials",
            min=0,
            help="Hyperparameter search trials (Optuna); 0: the use case's default "
            "(env MLOPS_SEARCH_TRIALS).",
        ),
    ] = None,
    search_timeout: Annotated[
        float | None,
        typer.Option(
            "--search-timeout",
            help="Seconds the search may take; trials then stop. (env MLOPS_SEARCH_TIMEOUT_S)",
        ),
    ] = None,
) -> None:
    """Run the training pipeline (ZenML): load and seal, validate, split, search, train, evaluate, register,
    promote.

    The search cross-validates each trial on the training split in a shared Optuna study (another
    `mlops train` on the same data and settings joins it). Exit 75 (retryable) when the decision cannot
    be judged now (registry or a store unreachable or timed out): nothing moved, the refusal is audited;
    exit 5 is a policy refusal."""
    if search_timeout is not None and search_timeout <= 0:
        raise UsageError(
            f"--search-timeout must be positive, got {search_timeout}", hint="e.g. --search-timeout 600"
        )
    settings, name = settings_for(project)
    overrides: dict[str, Any] = {}
    if trials is not None:
        overrides["search_trials"] = trials
    if search_timeout is not None:
        overrides["search_timeout_s"] = search_timeout
    if overrides:
        settings = settings.model_copy(update=overrides)
    from mlops.runner import run_training

    with render.pipeline_progress(settings, f"training {name}", command="train", as_json=as_json):
        result = run_training(settings, name)
    render.show(result, as_json, render.training(name))


@app.command()
def models(project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """List registered versions with aliases, metrics and serving runtime."""
    settings, name = settings_for(project)
    from mlops.registry import Registry

    versions = [v.as_dict() for v in Registry(settings, name).versions()]
    _add_live_accuracy(versions, settings, name)
    render.show(versions, as_json, render.versions(settings.registered_model_name(name)))


def _add_live_accuracy(versions: list[dict[str, Any]], settings: Settings, project: str) -> None:
    """Each version's live evidence from the prediction log: ``live = {correct, labelled, accuracy}``.
    The log being unreachable costs the column (a warning), not the listing."""
    from mlops.stores.predictions import PredictionStore

    url = settings.prediction_log_db_url
    store = PredictionStore(url)
    try:
        live = store.live_accuracy(project, settings.registered_model_name(project))
    except Exception as exc:  # an unreachable or outdated server database
        render.err.print(
            f"[yellow]warning:[/] live accuracy unavailable ({mask_url(url)}): {str(exc).splitlines()[0]}"
        )
        live = {}
    finally:
        store.dispose()
    for v in versions:
        correct, labelled = live.get(v["version"], (0, 0))
        v["live"] = {
            "correct": correct,
            "labelled": labelled,
            "accuracy": correct / labelled if labelled else None,
        }


@app.command()
def predict(
    features: Annotated[
        str, typer.Argument(help="Feature values as JSON, e.g. '{\"sepal_length\": 5.1, ...}'.")
    ],
    project: ProjectOpt = None,
    alias: Annotated[str, typer.Option(help="Registry alias to load.")] = "production",
    as_json: JsonOpt = False,
) -> None:
    """Predict one row with the model that holds ALIAS, loaded from the MLflow registry."""
    settings, name = settings_for(project)
    try:
        row = json.loads(features)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"features are not valid JSON: {exc}", hint="quote the JSON object in single quotes"
        ) from None
    from mlops.predict import predict_from_registry

    result = predict_from_registry(settings, name, row, alias=alias)
    render.show(result, as_json, render.prediction(row))


@app.command()
def promote(
    version: Annotated[str, typer.Argument(help="Model version to promote.")],
    to: Annotated[str, typer.Option("--to", help="Target alias.")] = "production",
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit log).")] = "",
    approver: Annotated[str | None, typer.Option(help="Who approves (required for production).")] = None,
    via_pipeline: Annotated[bool, typer.Option(help="Run it as the ZenML promotion pipeline.")] = False,
    data: Annotated[
        Path | None,
        typer.Option("--data", help="Newer rows (CSV/Parquet) to re-validate on (fresh evidence)."),
    ] = None,
    breaking: Annotated[
        bool,
        typer.Option(help="VERSION's inputs differ from the served version's on purpose (needs --approver)."),
    ] = False,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move an alias to VERSION after re-validating it (compare-and-set, audited).

    Re-validation scores rows the version never saw: fresh ones (--data, or the loader's generator),
    otherwise its sealed slice, and must be non-inferior to production. Exit 5: refused by policy;
    exit 75: cannot be judged now (registry or a store down), retry later."""
    settings, name = settings_for(project)
    if to not in {"production", "staging"}:
        raise UsageError(f"cannot promote to {to!r}", hint="use --to production or --to staging")
    if data is not None and not data.is_file():
        raise UsageError(f"--data {data}: no such file", hint="pass a CSV or Parquet file of labelled rows")
    result: dict[str, Any]
    if via_pipeline and (data is not None or breaking):
        raise UsageError(
            "--data and --breaking are not available with --via-pipeline yet", hint="drop --via-pipeline"
        )
    if via_pipeline:
        quiet_libraries()
        from mlops.runner import run_promotion

        result = run_promotion(settings, name, version, to=to, reason=reason, approver=approver or "")
    else:
        from mlops.governance.promote import manual_promote
        from mlops.projects import get_project

        result = manual_promote(
            settings,
            get_project(name),
            version,
            to=to,
            reason=reason,
            approver=approver,
            data_path=data,
            breaking=breaking,
        ).as_dict()
    render.show(result, as_json, render.promotion)


@app.command()
def rollback(
    to: Annotated[str, typer.Option("--alias", help="Alias to roll back.")] = "production",
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit log).")] = "",
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Put the previous holder of the alias back (from the audit history)."""
    settings, name = settings_for(project)
    from mlops.governance.promote import rollback as do_rollback
    from mlops.projects import get_project

    event = do_rollback(settings, get_project(name), alias=to, reason=reason)
    render.show(event.as_dict(), as_json, render.rollback)


audit_app = typer.Typer(help="The append-only, hash-chained audit log of decisions and runs.")
app.add_typer(audit_app, name="audit")


@audit_app.callback(invoke_without_command=True)
def audit(
    ctx: typer.Context,
    project: ProjectOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="Most recent events.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Show the append-only audit log of promotion decisions (and of runs, killed ones included);
    `mlops audit verify` checks that nobody rewrote it."""
    if ctx.invoked_subcommand is not None:
        return
    settings, name = settings_for(project)
    from mlops.governance.runs import reconcile
    from mlops.stores.audit import AuditLog

    reconcile(settings)
    model_name = settings.registered_model_name(name)
    from mlops.stores.backup import AUDIT_SCOPE as STATE_SCOPE
    from mlops.stores.retention import AUDIT_SCOPE as LOG_SCOPE

    # the model's events, and the data's: purges, erasures, backups and restores
    events = AuditLog.for_settings(settings).history(
        model_name=model_name, limit=limit, also_projects=(LOG_SCOPE, STATE_SCOPE)
    )
    render.show(events, as_json, render.audit(model_name), document=[e.as_dict() for e in events])


@audit_app.command("verify")
def audit_verify(
    project: ProjectOpt = None,
    registry: Annotated[
        bool, typer.Option(help="Also compare the head recorded in the registered model's MLflow tag.")
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Recompute the hash chain and check its signed anchor: exit 0 when intact, 6 naming the first
    broken row (edited, deleted, or the chain rewritten)."""
    settings, name = settings_for(project, configure=registry)
    from mlops.errors import AuditTampered
    from mlops.stores.audit import AuditLog

    heads: list[str] = []
    if registry:
        from mlops.governance.ledger import external_heads
        from mlops.registry import Registry

        heads = external_heads(Registry(settings, name))
    report = AuditLog.for_settings(settings).verify(heads)
    render.show(report, as_json, render.audit_verify, document=report.as_dict())
    if not report.ok:
        raise AuditTampered(
            f"audit log tampered: seq {report.broken_seq}: {report.reason}",
            hint="restore the control database from a backup; the rows after it cannot be trusted",
        )


@app.command()
def status(project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """Where state lives and which versions hold which alias."""
    settings, name = settings_for(project)
    from mlops.governance.runs import reconcile
    from mlops.registry import Registry

    info: dict[str, Any] = {
        "project": name,
        "environment": settings.environment,
        "state_dir": str(settings.state_dir),
        "tracking_uri": mask_url(settings.mlflow_tracking_uri),
        "registered_model": settings.registered_model_name(name),
        "audit_db": mask_url(settings.audit_url),
        "prediction_log": mask_url(settings.prediction_log_db_url),
        "zenml_config": str(settings.zenml_config_path),
    }
    try:
        info["aliases"] = Registry(settings, name).aliases()
    except Exception as exc:  # status must answer even when the registry is down
        info["aliases"] = {}
        info["registry_error"] = settings.redact(f"{type(exc).__name__}: {exc}")
    info["dead_runs_reconciled"] = len(reconcile(settings))
    render.show(info, as_json, render.status)
