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


@step(on_failure=run_failed)
def train_model(
    train_set: pd.DataFrame, project: str, seed: int
) -> tuple[Annotated[Pipeline, "model"], Annotated[dict[str, Any], "decision"]]:
    """Preprocessing + estimator in one pipeline; binary use cases also get a tuned decision threshold."""
    spec = get_project(project)
    model, threshold = ml.train_with_threshold(spec, train_set, seed)
    meta: dict[str, Any] = {"estimator": type(model[-1]).__name__, "train_rows": len(train_set)}
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
