"""The training lifecycle without an orchestrator, composed of the same functions as the ZenML steps.

The pipeline (``mlops.pipelines.training``) is the product path. This in-process composition exists
for tests and benchmarks that need a registered model in a temporary registry in a second, without
paying for ZenML's run bookkeeping.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops.data.split import fingerprint, split
from mlops.governance.gates import check_data, model_gate
from mlops.governance.promote import auto_promote, summary
from mlops.ml import evaluate as ev
from mlops.ml import model as ml
from mlops.ml import onnx_export
from mlops.projects import get_project
from mlops.tracking import register

if TYPE_CHECKING:
    import pandas as pd

    from mlops.settings import Settings


def train_register_promote(
    settings: Settings, project: str, frame: pd.DataFrame | None = None, *, seed: int | None = None
) -> dict[str, Any]:
    from mlops.errors import GateFailed

    spec = get_project(project)
    seed = settings.seed if seed is None else seed
    data = spec.load(settings) if frame is None else frame
    check_data(spec, data)
    train, holdout = split(data, spec.target, settings.test_size, seed)
    model, threshold = ml.train_with_threshold(spec, train, seed)
    x, y = ev.holdout_xy(spec, holdout)
    proba = model.predict_proba(x)
    metrics, groups, reasons = model_gate(spec, holdout, proba, threshold)
    if reasons:
        raise GateFailed(f"model gate failed for {spec.name!r}", reasons=reasons)
    onnx_bytes = onnx_export.export(spec, model)
    parity = onnx_export.check_parity(spec, model, onnx_bytes, holdout, settings.onnx_prob_tolerance)
    ref = register(
        settings=settings,
        spec=spec,
        model=model,
        holdout=holdout,
        metrics=metrics,
        confusion_matrix=ev.confusion(spec, y, proba, threshold),
        onnx_bytes=onnx_bytes,
        parity=parity.as_dict(),
        dataset_hash=fingerprint(data),
        seed=seed,
        threshold=threshold,
        group_metrics=groups,
    )
    decision, event = auto_promote(settings, spec, ref.version, holdout, metrics, [])
    return {
        "model": {"name": ref.name, "version": ref.version, "run_id": ref.run_id},
        "metrics": metrics,
        "onnx_parity": parity.as_dict(),
        "promotion": summary(decision, event),
    }
