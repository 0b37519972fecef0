"""The `mlops` command line: one thin command per user verb.

Heavy libraries (ZenML, MLflow, scikit-learn) are imported inside commands, so `mlops --help`
answers at once. ``MlopsError`` becomes an exit code here (``_Commands``) and nowhere else.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from mlops.errors import MlopsError, UsageError
from mlops.settings import Settings, get_settings, mask_url


class _Commands(typer.core.TyperGroup):
    """Turns ``MlopsError`` into its message and exit code, for `mlops` and in-process runners alike."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context
        try:
            return super().invoke(ctx)
        except MlopsError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=_Commands,
    name="mlops",
    help="Train, register, promote, serve and govern ML models (ZenML + MLflow + FastAPI).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        from mlops import __version__

        console.print(f"mlops {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Train, register, promote, serve and govern ML models (ZenML + MLflow + FastAPI)."""


ProjectOpt = Annotated[
    str | None, typer.Option("--project", "-p", help="Use case (default: MLOPS_PROJECT or iris).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
F = TypeVar("F", bound=Callable[..., Any])


def _settings(project: str | None, *, configure: bool = True) -> tuple[Settings, str]:
    """The settings and the validated project name; ``configure`` (every command that reaches ZenML or
    MLflow) points those libraries at the state folder first: the CLI's one ``configure_libraries``."""
    settings = get_settings()
    name = project or settings.project
    if configure:
        from mlops.configure import configure_libraries

        configure_libraries(settings)
    from mlops.projects import get_project

    get_project(name)  # validates the name with a helpful message
    return settings, name


_json_out = sys.stdout  # with --json, only the JSON document goes here; library chatter goes to stderr


def _print_json(value: Any) -> None:
    _json_out.write(json.dumps(value, indent=2, default=str, sort_keys=False) + "\n")
    _json_out.flush()


def _require_alias(settings: Settings, project: str, alias: str) -> None:
    """Refuse before a pipeline starts: a step failing on it would print ZenML's traceback."""
    from mlops.errors import NotFound
    from mlops.registry import Registry

    registry = Registry(settings, project)
    if registry.alias_version(alias) is None:
        raise NotFound(f"no model of {registry.name!r} holds alias {alias!r}", hint="run `mlops train` first")


def _quiet_libraries() -> None:
    import logging

    for name in ("mlflow", "alembic", "zenml", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)


@app.command()
def train(project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """Run the training pipeline (ZenML): load, validate, split, train, evaluate, register, promote."""
    settings, name = _settings(project)
    _quiet_libraries()
    from mlops.runner import run_training

    if as_json:
        _print_json(run_training(settings, name))
        return
    with console.status(f"[bold]Training [cyan]{name}[/] through the ZenML pipeline…", spinner="dots"):
        result = run_training(settings, name)
    model, promotion = result.get("model", {}), result.get("promotion", {})
    table = Table(title=f"{name}: run {result['zenml_run_name']}", show_header=False)
    table.add_row("model", f"{model.get('name')} v{model.get('version')}")
    table.add_row("mlflow run", str(model.get("run_id")))
    primary = result.get("metrics", {})
    table.add_row("metrics", ", ".join(f"{k}={v:.4f}" for k, v in primary.items()))
    parity = result.get("onnx_parity", {})
    table.add_row(
        "runtime", "onnx (parity ok)" if parity.get("ok") else f"native (onnx parity failed {parity})"
    )
    table.add_row(
        "decision",
        f"[bold]{promotion.get('outcome')}[/] → {promotion.get('alias')}: {promotion.get('reason')}",
    )
    console.print(table)


@app.command()
def models(project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """List registered versions with aliases, metrics and serving runtime."""
    settings, name = _settings(project)
    from mlops.registry import Registry

    versions = [v.as_dict() for v in Registry(settings, name).versions()]
    if as_json:
        _print_json(versions)
        return
    if not versions:
        console.print(f"No versions of {settings.registered_model_name(name)!r} yet. Run `mlops train`.")
        return
    primary = versions[-1]["tags"].get("primary_metric", "")
    table = Table(title=settings.registered_model_name(name))
    for col in ("version", "aliases", primary or "metric", "runtime", "decision", "created"):
        table.add_column(col)
    for v in versions:
        table.add_row(
            v["version"],
            ", ".join(v["aliases"]),
            f"{v['metrics'].get(primary, float('nan')):.4f}",
            v["runtime"],
            v["promotion"],
            v["created_at"][:19],
        )
    console.print(table)


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
    settings, name = _settings(project)
    try:
        row = json.loads(features)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"features are not valid JSON: {exc}", hint="quote the JSON object in single quotes"
        ) from None
    from mlops.predict import predict_from_registry

    result = predict_from_registry(settings, name, row, alias=alias)
    if as_json:
        _print_json(result)
        return
    console.print(f"[bold]{result['model_uri']}[/] (version {result['model_version']})")
    console.print(f"input: {json.dumps(row)}")
    console.print(f"prediction: [bold green]{result['prediction']}[/] ({result['label']})")
    console.print("probabilities: " + ", ".join(f"{k}={v:.3f}" for k, v in result["probabilities"].items()))


@app.command()
def promote(
    version: Annotated[str, typer.Argument(help="Model version to promote.")],
    to: Annotated[str, typer.Option("--to", help="Target alias.")] = "production",
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit log).")] = "",
    approver: Annotated[str | None, typer.Option(help="Who approves (required for production).")] = None,
    via_pipeline: Annotated[bool, typer.Option(help="Run it as the ZenML promotion pipeline.")] = False,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Move an alias to VERSION after re-validating it on a fresh holdout (compare-and-set, audited)."""
    settings, name = _settings(project)
    if to not in {"production", "staging"}:
        raise UsageError(f"cannot promote to {to!r}", hint="use --to production or --to staging")
    if via_pipeline:
        _quiet_libraries()
        from mlops.runner import run_promotion

        result = run_promotion(settings, name, version, to=to, reason=reason, approver=approver or "")
    else:
        from mlops.governance.promote import manual_promote
        from mlops.projects import get_project

        result = manual_promote(
            settings, get_project(name), version, to=to, reason=reason, approver=approver
        ).as_dict()
    if as_json:
        _print_json(result)
        return
    console.print(
        f"[green]{to}[/]: {result['from_version'] or '-'} → {result['to_version']} ({result['reason']})"
    )


@app.command()
def rollback(
    to: Annotated[str, typer.Option("--alias", help="Alias to roll back.")] = "production",
    reason: Annotated[str, typer.Option(help="Why (recorded in the audit log).")] = "",
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Put the previous holder of the alias back (from the audit history)."""
    settings, name = _settings(project)
    from mlops.governance.promote import rollback as do_rollback
    from mlops.projects import get_project

    event = do_rollback(settings, get_project(name), alias=to, reason=reason)
    if as_json:
        _print_json(event.as_dict())
        return
    console.print(f"[yellow]{to}[/] rolled back: {event.from_version} → {event.to_version}")


@app.command()
def audit(
    project: ProjectOpt = None,
    limit: Annotated[int, typer.Option(min=1, help="Most recent events.")] = 50,
    as_json: JsonOpt = False,
) -> None:
    """Show the append-only audit log of promotion decisions (and of runs, killed ones included)."""
    settings, name = _settings(project)
    from mlops.governance.runs import reconcile
    from mlops.stores.audit import AuditLog

    reconcile(settings)
    events = AuditLog(settings.audit_url).history(
        model_name=settings.registered_model_name(name), limit=limit
    )
    if as_json:
        _print_json([e.as_dict() for e in events])
        return
    console.print(f"[bold]audit: {settings.registered_model_name(name)}[/] ({len(events)} events)")
    colors = {"promoted": "green", "kept": "yellow", "rejected": "red", "refused": "red", "failed": "red"}
    for e in events:
        color = colors.get(e.decision, "white")
        console.print(
            f"#{e.id} {e.at:%Y-%m-%d %H:%M:%S} [dim]{e.actor}[/] {e.action} {e.alias or ''} "
            f"{e.from_version or '-'}→{e.to_version or '-'} [{color}]{e.decision}[/]: {e.reason}",
            highlight=False,
        )


@app.command()
def status(project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """Where state lives and which versions hold which alias."""
    settings, name = _settings(project)
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
    if as_json:
        _print_json(info)
        return
    table = Table(show_header=False, title="mlops status")
    for key, value in info.items():
        table.add_row(key, json.dumps(value) if isinstance(value, dict) else str(value))
    console.print(table)


def _check_output(path: Path, suffixes: tuple[str, ...]) -> None:
    """Refuse an output path before the work: a directory would only fail at the final write."""
    if path.suffix.lower() not in suffixes:
        raise UsageError(f"cannot write {path.name}", hint=f"use a {' or '.join(suffixes)} file name")
    if path.is_dir():
        raise UsageError(f"output {path} is a directory", hint=f"pass a file name, e.g. out{suffixes[0]}")


@app.command()
def generate(
    output: Annotated[Path, typer.Option(help="CSV or Parquet file to write (raw schema of the use case).")],
    rows: Annotated[int, typer.Option(min=1, help="Number of rows.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same rows).")] = 0,
    drift: Annotated[bool, typer.Option(help="Shift distributions and add unseen categories.")] = False,
    project: ProjectOpt = None,
) -> None:
    """Write realistic synthetic rows (readmission: the diabetic_data.csv schema), in bounded memory."""
    _, name = _settings(project, configure=False)
    if name != "readmission":
        raise UsageError(f"no data generator for project {name!r}", hint="use --project readmission")
    _check_output(output, (".csv", ".parquet"))
    from mlops.data.readmission.generator import write

    with console.status(f"generating {rows:,} rows…"):
        path = write(output, rows, seed=seed, drift=drift)
    console.print(f"[green]{rows:,}[/] rows{' (drifted)' if drift else ''} → {path}")


@app.command()
def serve(
    project: ProjectOpt = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default MLOPS_HOST, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default MLOPS_PORT, 8000).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes.")] = 1,
) -> None:
    """Serve the production model over HTTP (FastAPI): /predict, /health, /ready, /metrics, /docs."""
    settings, name = _settings(project)
    from mlops.serving.server import serve as run

    run(settings, name, host or settings.host, port or settings.port, workers)


@app.command()
def demo(
    project: ProjectOpt = None,
    port: Annotated[int | None, typer.Option(help="Port (default MLOPS_PORT, 8000).")] = None,
    smoke: Annotated[bool, typer.Option(help="Stop after the HTTP prediction (for tests).")] = False,
    train_first: Annotated[
        bool | None,
        typer.Option(
            "--train/--no-train", help="Run the pipeline first (default: only when no production model)."
        ),
    ] = None,
) -> None:
    """Train through the pipeline, predict from the registry, then serve and predict over HTTP."""
    settings, name = _settings(project)
    from mlops.projects import get_project
    from mlops.registry import Registry

    spec = get_project(name)
    if train_first is None:
        train_first = Registry(settings, name).alias_version("production") is None
    if train_first:
        train(project=name, as_json=False)
    predict(json.dumps(spec.example), project=name, alias="production", as_json=False)
    from mlops.serving.demo import run_demo

    run_demo(settings, name, port or settings.port, smoke=smoke, console=console)


@app.command("batch-predict")
def batch_predict(
    source: Annotated[Path, typer.Argument(help="CSV or Parquet file with the feature columns.")],
    output: Annotated[
        Path | None, typer.Option(help="Parquet file to write (default: next to the input).")
    ] = None,
    alias: Annotated[str, typer.Option(help="Registry alias whose model scores the file.")] = "production",
    chunk_rows: Annotated[int, typer.Option(min=1_000, help="Rows per chunk (bounds memory).")] = 250_000,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Score a file with the batch inference pipeline (ZenML): chunked, gated, versioned."""
    settings, name = _settings(project)
    from mlops.data.inputs import check_input_file
    from mlops.projects import get_project

    target = output or source.with_name(f"{source.stem}.predictions.parquet")
    _check_output(target, (".parquet",))
    check_input_file(get_project(name), source)
    _quiet_libraries()
    _require_alias(settings, name, alias)
    from mlops.runner import run_batch

    result = run_batch(settings, name, source, target, alias=alias, chunk_rows=chunk_rows)
    if as_json:
        _print_json(result)
        return
    console.print(
        f"[green]{result['rows']:,}[/] rows scored by {result['model_name']} v{result['model_version']} "
        f"({result['runtime']}) in {result['seconds']:.1f} s → {result['output']}"
    )
    console.print("by label: " + ", ".join(f"{k}={v:,}" for k, v in result["predictions_by_label"].items()))


@app.command()
def drift(
    source: Annotated[Path | None, typer.Option("--input", help="Check a batch file, not the log.")] = None,
    window: Annotated[int, typer.Option(min=50, help="Most recent predictions (or rows).")] = 5_000,
    alias: Annotated[str, typer.Option(help="Alias whose training data is the reference.")] = "production",
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the monitoring pipeline: Evidently drift of the recent window vs the training data."""
    settings, name = _settings(project)
    if source is not None:  # drifted data is what this looks for: readable is enough, no gate
        from mlops.data.inputs import check_input_file
        from mlops.projects import get_project

        check_input_file(get_project(name), source, gate=False)
    _quiet_libraries()
    _require_alias(settings, name, alias)
    from mlops.runner import run_monitoring

    with console.status("checking drift (Evidently)…"):
        result = run_monitoring(settings, name, alias=alias, source=source, window=window)
    if as_json:
        _print_json(result)
        return
    verdict = "[red]drift detected[/]" if result["detected"] else "[green]no drift[/]"
    console.print(
        f"{verdict}: {result['share']:.0%} of features drifted over {result['rows']:,} rows "
        f"(threshold {result['threshold_share']:.0%}) — report {result['report_path']}"
    )
    drifted = [n for n, f in result["features"].items() if f["drifted"]]
    if drifted:
        console.print("drifted: " + ", ".join(drifted))
    if result.get("retrain"):
        console.print(f"retraining: {result['retrain']}")


@app.command()
def lineage(
    target: Annotated[str, typer.Argument(help="A prediction's request id, or a model version number.")],
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Trace prediction → model version → MLflow run → ZenML run → data → git commit and config."""
    settings, name = _settings(project)
    _quiet_libraries()
    from mlops import lineage as lin

    chain = lin.for_version(settings, name, target) if target.isdigit() else lin.for_request(settings, target)
    if as_json:
        _print_json(chain)
        return
    for link, value in chain.items():
        ok = value.get("resolved", True) if isinstance(value, dict) else True
        mark = "[green]✓[/]" if ok else "[red]✗[/]"
        console.print(f"{mark} [bold]{link}[/]: {json.dumps(value, default=str)}", highlight=False)


@app.command()
def reproduce(
    version: Annotated[
        str, typer.Argument(help="Model version to re-train from its recorded data and config.")
    ],
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-run training from the recorded dataset artifact and config; report whether metrics match."""
    settings, name = _settings(project)
    _quiet_libraries()
    from mlops.lineage import reproduce as do_reproduce

    result = do_reproduce(settings, name, version)
    if as_json:
        _print_json(result)
    else:
        verdict = "[green]reproduced[/]" if result["match"] else "[red]NOT reproduced[/]"
        console.print(
            f"version {version}: {verdict} (max |Δ| = {result['max_abs_diff']:.2e}, "
            f"dataset hash matches: {result['dataset_hash_matches']})"
        )
    if not result["match"]:
        raise SystemExit(1)


stack_app = typer.Typer(help="ZenML stacks from configs/stacks/<env>.yaml.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")


@stack_app.command("apply")
def stack_apply(
    env: Annotated[str, typer.Argument(help="Stack file name: local, staging or production.")],
    activate: Annotated[bool, typer.Option(help="Make it the active stack.")] = False,
    config_dir: Annotated[Path, typer.Option(help="Folder of stack files.")] = Path("configs/stacks"),
    as_json: JsonOpt = False,
) -> None:
    """Register (or update) the stack, its components and secrets; idempotent."""
    from mlops.configure import configure_libraries

    configure_libraries(get_settings())
    import yaml

    from mlops import stacks

    path = stacks.stack_path(env, config_dir)
    try:
        stack = stacks.load(path)
    except (yaml.YAMLError, LookupError, TypeError, AttributeError) as exc:  # malformed, or wrong shape
        raise UsageError(
            f"stack file {path} is not a stack definition: {type(exc).__name__}: {exc}",
            hint="start from configs/stacks/local.yaml (name, components, secrets)",
        ) from None
    report = stacks.apply(stack, activate=activate)
    if as_json:
        _print_json(report)
        return
    console.print(f"stack [bold]{report['stack']}[/]: {report['status']}")
    for kind in ("secrets", "components"):
        for name, status in report[kind].items():
            console.print(f"  {kind[:-1]} {name}: {status}")


db_app = typer.Typer(help="The project's own databases: audit log, prediction log, drift results.")
app.add_typer(db_app, name="db", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(as_json: JsonOpt = False) -> None:
    """Migrate every configured database to the latest schema (idempotent; an init step in compose/k8s)."""
    from mlops.stores.migrate import upgrade_all

    report = [u.as_dict() for u in upgrade_all(get_settings())]
    if as_json:
        _print_json(report)
        return
    for u in report:
        before, after = ", ".join(u["before"]) or "empty", ", ".join(u["after"])
        state = f"{before} → {after}" if u["changed"] else f"up to date ({after})"
        console.print(f"{' + '.join(u['databases'])} [dim]{u['url']}[/]: {state}", highlight=False)


def main() -> None:
    global _json_out
    if "--json" in sys.argv[1:]:
        # ZenML and MLflow log to stdout; keep it machine-readable by sending everything else to stderr.
        _json_out, sys.stdout = sys.stdout, sys.stderr
    app()


if __name__ == "__main__":
    main()
