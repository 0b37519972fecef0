"""Model stage: train, evaluate with its gate, export to ONNX with a parity check."""

from __future__ import annotations

import base64
import logging
from typing import Annotated, Any

import pandas as pd
from sklearn.pipeline import Pipeline
from zenml import log_metadata, step
from zenml.types import HTMLString

from mlops.errors import GateFailed
from mlops.governance.gates import behaviour_results, model_gate
from mlops.ml import evaluate as ev
from mlops.ml import model as ml
from mlops.ml import onnx_export
from mlops.projects import get_project
from mlops.settings import Settings
from mlops.steps.hooks import run_failed

logger = logging.getLogger(__name__)


@step(enable_cache=False, on_failure=run_failed)
def search_hyperparameters(
    train_set: pd.DataFrame, project: str, seed: int, run_settings: dict[str, Any]
) -> Annotated[dict[str, Any], "search"]:
    """Optuna search over the spec's space, each trial cross-validated on the training split (the
    only rows this step receives) and logged as a nested MLflow run. The study is in shared storage
    (``settings.search_storage``, else the journal file in the state folder): other workers may join
    it. ``settings.search_trials`` (0: the spec's default) trials, within ``search_timeout_s``.
    Nothing to search (no space, or 0 trials): ``{}``, and training uses the model's defaults.
    Not cached: a re-run joins the same study and adds only the trials still missing."""
    from mlops.ml import search
    from mlops.tracking import finish_search_run, start_search_run, trial_logger

    settings = Settings.from_step_parameters(run_settings)
    spec = get_project(project)
    trials = settings.search_trials or spec.search.trials
    if not spec.search.parameters or trials < 1:
        log_metadata({"search": "none"})
        return {}
    name = search.study_name(spec, train_set, seed)
    label = search.describe_storage(settings.search_storage, settings.state_dir)
    parent = start_search_run(settings, spec, name, {"search.storage": label})
    try:
        result = search.run_search(
            spec,
            train_set,
            seed=seed,
            storage=search.open_storage(settings.search_storage, settings.state_dir),
            n_trials=trials,
            timeout_s=settings.search_timeout_s,
            name=name,
            callbacks=[trial_logger(settings, spec, parent)],
            storage_label=label,
        ).as_dict()
    except BaseException:
        from mlops.tracking import client_for

        client_for(settings).set_terminated(parent, "FAILED")
        raise
    finish_search_run(settings, parent, result)
    summary = {k: v for k, v in result.items() if k != "trials"} | {"mlflow_run_id": parent}
    log_metadata({"search": summary})
    return summary


@step(on_failure=run_failed)
def train_model(
    train_set: pd.DataFrame, project: str, seed: int, search: dict[str, Any] | None = None
) -> tuple[Annotated[Pipeline, "model"], Annotated[dict[str, Any], "decision"]]:
    """Preprocessing + estimator in one pipeline, with the search's best parameters when it ran;
    binary use cases also get a tuned decision threshold."""
    from mlops.ml.search import with_params

    params = (search or {}).get("best_params") or {}
    spec = with_params(get_project(project), params)
    model, threshold = ml.train_with_threshold(spec, train_set, seed)
    meta: dict[str, Any] = {
        "estimator": type(model[-1]).__name__,
        "train_rows": len(train_set),
        "params": params,
    }
    log_metadata({**meta, "threshold": "argmax" if threshold is None else threshold})
    return model, {"threshold": threshold}


@step(on_failure=run_failed)
def evaluate_model(
    model: Pipeline, eval_holdout: pd.DataFrame, decision: dict[str, Any], project: str
) -> tuple[
    Annotated[dict[str, float], "metrics"],
    Annotated[dict[str, Any], "group_metrics"],
    Annotated[list[list[int]], "confusion_matrix"],
    Annotated[HTMLString, "confusion_matrix_plot"],
]:
    """Holdout metrics and per-group metrics; the model gate (minimums, fairness gap, the spec's
    behavioural checks) stops the run with every reason before anything is registered."""
    spec = get_project(project)
    x, _ = ev.holdout_xy(spec, eval_holdout)
    proba = model.predict_proba(x)
    threshold = decision.get("threshold")
    behaviour = behaviour_results(spec, eval_holdout, model.predict_proba, threshold)
    metrics, groups, reasons = model_gate(spec, eval_holdout, proba, threshold, behaviour=behaviour)
    matrix = ev.confusion(spec, eval_holdout[spec.target].to_numpy(), proba, threshold)
    log_metadata({"metrics": metrics, "group_metrics": groups, "behaviour": [r.as_dict() for r in behaviour]})
    if reasons:
        raise GateFailed(f"model gate failed for {spec.name!r}", reasons=reasons)
    png = base64.b64encode(ev.confusion_png(spec, matrix)).decode()
    return (
        metrics,
        groups,
        matrix,
        HTMLString(f'<img alt="confusion matrix" src="data:image/png;base64,{png}"/>'),
    )


@step(on_failure=run_failed)
def export_onnx(
    model: Pipeline, eval_holdout: pd.DataFrame, project: str, run_settings: dict[str, Any]
) -> tuple[Annotated[bytes, "onnx_model"], Annotated[dict[str, Any], "onnx_parity"]]:
    """ONNX export + parity on the holdout; a failed conversion is recorded, never fatal (native fallback)."""
    spec = get_project(project)
    tolerance = Settings.from_step_parameters(run_settings).onnx_prob_tolerance
    try:
        onnx_bytes = onnx_export.export(spec, model)
    except Exception as exc:
        parity = onnx_export.Parity(False, 0, 0.0, float("inf"), tolerance, f"{type(exc).__name__}: {exc}")
        logger.warning("ONNX export failed, the service will use the native model: %s", parity.error)
        log_metadata({"onnx_parity": parity.as_dict()})
        return b"", parity.as_dict()
    parity = onnx_export.check_parity(spec, model, onnx_bytes, eval_holdout, tolerance)
    if not parity.ok:
        logger.warning("ONNX parity failed (%s), the service will use the native model", parity)
    log_metadata({"onnx_parity": parity.as_dict(), "onnx_bytes": len(onnx_bytes)})
    return onnx_bytes, parity.as_dict()
