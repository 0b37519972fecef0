"""A test fixture builder: a registered model in a temporary registry in a second, without ZenML's
run bookkeeping.

This is not a second training path of the product: training is composed once, in the ZenML
pipeline (``mlops.pipelines.training``). Tests and benchmarks that only need "a registered,
promoted model" call :func:`train_register_promote`, which runs the same library functions the
steps call, in the steps' order, with the steps' decisions (a model gate that stops before
registering; an ONNX export that falls back to the native model instead of failing). The one
thing it leaves out is what only a ZenML run has: the ``zenml_*`` link tags and the run metadata.
``tests/pipeline/test_training_pipeline.py`` checks that the pipeline and this builder register the
same tags and metric keys for the same data, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mlops.data.split import fingerprint, split, subsample
from mlops.errors import GateFailed
from mlops.governance.gates import check_data, model_gate
from mlops.governance.model_card import refresh as refresh_model_card
from mlops.governance.promote import auto_promote, summary
from mlops.governance.sealed import carve, sealed_tags
from mlops.ml import evaluate as ev
from mlops.ml import model as ml
from mlops.ml import onnx_export, search
from mlops.ml.search import with_params
from mlops.projects import get_project
from mlops.registry import Registry
from mlops.tracking import register, search_tags

if TYPE_CHECKING:
    import pandas as pd

    from mlops.settings import Settings
    from mlops.spec import ProjectSpec


# The training pipeline's steps in order (mlops.pipelines.training), as its tests name them.
TRAINING_STEPS = [
    "load_data",
    "validate_data",
    "split_data",
    "search_hyperparameters",
    "train_model",
    "evaluate_model",
    "export_onnx",
    "register_model",
    "promote_model",
]

logger = logging.getLogger(__name__)


def export_or_fallback(
    spec: ProjectSpec, model: Any, holdout: pd.DataFrame, tolerance: float
) -> tuple[bytes, dict[str, Any]]:
    """What the ``export_onnx`` step decides: ONNX bytes and the parity record, or, when the
    conversion fails, no bytes and a failed parity record naming the error (the native fallback)."""
    try:
        onnx_bytes = onnx_export.export(spec, model)
    except Exception as exc:
        parity = onnx_export.Parity(False, 0, 0.0, float("inf"), tolerance, f"{type(exc).__name__}: {exc}")
        logger.warning("ONNX export failed, the service will use the native model: %s", parity.error)
        return b"", parity.as_dict()
    return onnx_bytes, onnx_export.check_parity(spec, model, onnx_bytes, holdout, tolerance).as_dict()


def train_register_promote(
    settings: Settings, project: str, frame: pd.DataFrame | None = None, *, seed: int | None = None
) -> dict[str, Any]:
    """load + seal → validate → split → train → evaluate (gate) → export ONNX → register → promote, as
    the pipeline's steps do; returns the shape of ``mlops train --json`` (model, metrics, parity,
    promotion)."""
    spec = get_project(project)
    seed = settings.seed if seed is None else seed
    # load_data, validate_data, split_data
    loaded = spec.load(settings) if frame is None else frame
    data, sealed = carve(settings, spec, loaded)
    dataset_hash = fingerprint(data)  # the rows training drew from, as load_data records
    check_data(spec, data)
    train, holdout = split(data, spec.target, settings.test_size, seed)
    train = subsample(train, spec.target, settings.train_fraction, seed)
    # search_hyperparameters (the same seeded study, without its MLflow runs)
    searched = _search(settings, spec, train, seed)
    spec = with_params(spec, searched.get("best_params") or {})
    # train_model
    model, threshold = ml.train_with_threshold(spec, train, seed)
    # evaluate_model
    x, _ = ev.holdout_xy(spec, holdout)
    proba = model.predict_proba(x)
    metrics, groups, reasons = model_gate(spec, holdout, proba, threshold, predict_proba=model.predict_proba)
    matrix = ev.confusion(spec, holdout[spec.target].to_numpy(), proba, threshold)
    if reasons:
        raise GateFailed(f"model gate failed for {spec.name!r}", reasons=reasons)
    # export_onnx
    onnx_bytes, parity = export_or_fallback(spec, model, holdout, settings.onnx_prob_tolerance)
    # register_model
    ref = register(
        settings=settings,
        spec=spec,
        model=model,
        holdout=holdout,
        metrics=metrics,
        confusion_matrix=matrix,
        onnx_bytes=onnx_bytes or None,
        parity=parity,
        dataset_hash=dataset_hash,
        seed=seed,
        extra_tags={**sealed_tags(sealed.evidence()), **search_tags(searched)},
        threshold=threshold,
        group_metrics=groups,
        datasets={"train": train, "sealed": sealed.frame},
        data_source=str(settings.data_path or ""),
    )
    refresh_model_card(Registry(settings, spec.name), ref.version)
    # promote_model
    decision, event = auto_promote(settings, spec, ref.version, sealed, [])
    return {
        "model": {"name": ref.name, "version": ref.version, "run_id": ref.run_id},
        "metrics": metrics,
        "onnx_parity": parity,
        "promotion": summary(decision, event),
    }


def _search(settings: Settings, spec: ProjectSpec, train: pd.DataFrame, seed: int) -> dict[str, Any]:
    """The search step's result for these rows: the spec's space and trials, the same study name and
    seed (so the same best parameters), in the state folder's journal."""
    trials = settings.search_trials or spec.search.trials
    if not spec.search.parameters or trials < 1:
        return {}
    label = search.describe_storage(settings.search_storage, settings.state_dir)
    return search.run_search(
        spec,
        train,
        seed=seed,
        storage=search.open_storage(settings.search_storage, settings.state_dir),
        n_trials=trials,
        timeout_s=settings.search_timeout_s,
        name=search.study_name(spec, train, seed),
        storage_label=label,
    ).as_dict()
