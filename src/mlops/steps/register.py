"""Registry stage: register in MLflow (linked both ways with the ZenML model version) and promote.

Both steps have side effects, so they are never served from ZenML's cache.
"""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from sklearn.pipeline import Pipeline
from zenml import get_step_context, log_metadata, step
from zenml.types import MarkdownString

from mlops.governance.model_card import refresh as refresh_model_card
from mlops.governance.promote import auto_promote, summary
from mlops.governance.sealed import SealedSlice, sealed_tags
from mlops.projects import get_project
from mlops.registry import Registry
from mlops.settings import Settings
from mlops.steps.hooks import run_failed, run_succeeded
from mlops.tracking import register, search_tags


@step(enable_cache=False, on_failure=run_failed)
def register_model(
    model: Pipeline,
    train_set: pd.DataFrame,
    eval_holdout: pd.DataFrame,
    sealed: pd.DataFrame,
    metrics: dict[str, float],
    group_metrics: dict[str, Any],
    decision: dict[str, Any],
    confusion_matrix: list[list[int]],
    onnx_model: bytes,
    onnx_parity: dict[str, Any],
    dataset_hash: str,
    sealed_evidence: dict[str, Any],
    search: dict[str, Any],
    project: str,
    seed: int,
    run_settings: dict[str, Any],
) -> tuple[Annotated[dict[str, str], "mlflow_model_version"], Annotated[MarkdownString, "model_card"]]:
    """Log the MLflow run and register the version, tagged with its ZenML run, its sealed slice and
    the search that chose its parameters (``search.*``: study, storage, best value and parameters)."""
    settings = Settings.from_step_parameters(run_settings)
    spec = get_project(project)
    ctx = get_step_context()
    run = ctx.pipeline_run
    zenml_model = ctx.model if ctx.model is not None else None
    zenml_links = {
        "zenml_run_id": str(run.id),
        "zenml_run_name": run.name,
        "zenml_pipeline": run.pipeline.name if run.pipeline else "",
        "zenml_model_version_id": str(zenml_model.id) if zenml_model else "",
    }
    ref = register(
        settings=settings,
        spec=spec,
        model=model,
        holdout=eval_holdout,
        metrics=metrics,
        confusion_matrix=confusion_matrix,
        onnx_bytes=onnx_model or None,
        parity=onnx_parity,
        dataset_hash=dataset_hash,
        seed=seed,
        extra_tags={**zenml_links, **sealed_tags(sealed_evidence), **search_tags(search)},
        threshold=decision.get("threshold"),
        group_metrics=group_metrics,
        datasets={"train": train_set, "sealed": sealed},  # MLflow datasets beside the eval rows
        data_source=str(settings.data_path or ""),
    )
    link: dict[str, Any] = {"name": ref.name, "version": ref.version, "run_id": ref.run_id, "uri": ref.uri}
    step_meta: dict[str, Any] = {"mlflow_model": link}
    run_meta: dict[str, Any] = {"mlflow_model": link, "metrics": metrics}
    log_metadata(step_meta)
    log_metadata(metadata=run_meta, run_id_name_or_prefix=run.id)
    if zenml_model is not None:  # the ZenML model version stores the MLflow version (and vice versa, tags)
        log_metadata(metadata={**run_meta, "onnx_parity": onnx_parity}, infer_model=True)
    card = refresh_model_card(Registry(settings, spec.name), ref.version)
    return link, MarkdownString(card)


@step(enable_cache=False, on_failure=run_failed, on_success=run_succeeded)
def promote_model(
    mlflow_model_version: dict[str, str],
    sealed_slice: pd.DataFrame,
    sealed_evidence: dict[str, Any],
    project: str,
    run_settings: dict[str, Any],
) -> Annotated[dict[str, Any], "promotion_decision"]:
    """Fair promotion: challenger and champion scored on the sealed slice, decided by the paired
    bootstrap; compare-and-set alias move. A decision that cannot be taken now fails the run
    (``Unavailable``, exit 75) with nothing moved."""
    settings = Settings.from_step_parameters(run_settings)
    spec = get_project(project)
    sealed = SealedSlice.from_evidence(sealed_slice, sealed_evidence)
    decision, event = auto_promote(settings, spec, mlflow_model_version["version"], sealed, [])
    result = summary(decision, event)
    meta: dict[str, Any] = {"promotion": result}
    log_metadata(meta)
    log_metadata(metadata=meta, run_id_name_or_prefix=get_step_context().pipeline_run.id)
    return result
