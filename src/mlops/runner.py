"""Run the pipelines (training, promotion, batch inference, monitoring) on the active ZenML stack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mlops.configure import configure_libraries
from mlops.errors import MlopsError, error_from_data
from mlops.projects import ProjectSpec, get_project
from mlops.settings import Settings


def run_training(settings: Settings, project: str) -> dict[str, Any]:
    spec = _prepare(settings, project)
    from zenml import Model

    from mlops.pipelines.training import training_pipeline

    configured = training_pipeline.with_options(
        model=Model(
            name=settings.registered_model_name(spec.name), description=spec.description, tags=[spec.name]
        )
    )
    run = _submit(settings, configured, project=spec.name, test_size=settings.test_size, seed=settings.seed)
    return run_outputs(run)


def run_promotion(
    settings: Settings, project: str, version: str, *, to: str, reason: str, approver: str
) -> dict[str, Any]:
    """Run the promotion pipeline; its failure comes back as the step's own error (with reasons)."""
    spec = _prepare(settings, project)
    from mlops.pipelines.promotion import promotion_pipeline

    run = _submit(
        settings,
        promotion_pipeline,
        project=spec.name,
        version=version,
        to=to,
        reason=reason,
        approver=approver,
    )
    event: dict[str, Any] = run.steps["promote_version"].outputs["promotion_event"][0].load()
    return {"zenml_run_id": str(run.id), **event}


def run_batch(
    settings: Settings, project: str, source: Path, output: Path, *, alias: str, chunk_rows: int
) -> dict[str, Any]:
    spec = _prepare(settings, project)
    from mlops.pipelines.batch_inference import batch_inference_pipeline

    run = _submit(
        settings,
        batch_inference_pipeline,
        project=spec.name,
        input_path=str(source.resolve()),
        output_path=str(output.resolve()),
        alias=alias,
        chunk_rows=chunk_rows,
    )
    outputs = run.steps["score_batch"].outputs
    summary: dict[str, Any] = outputs["batch_summary"][0].load()
    return {"zenml_run_id": str(run.id), "artifact_uri": outputs["batch_predictions"][0].uri, **summary}


def run_monitoring(
    settings: Settings, project: str, *, alias: str, source: Path | None, window: int
) -> dict[str, Any]:
    spec = _prepare(settings, project)
    from mlops.pipelines.monitoring import monitoring_pipeline

    input_path = str(source.resolve()) if source else ""
    run = _submit(
        settings, monitoring_pipeline, project=spec.name, alias=alias, input_path=input_path, window=window
    )
    result: dict[str, Any] = run.steps["detect_drift"].outputs["drift_result"][0].load()
    return {"zenml_run_id": str(run.id), **result}


def _prepare(settings: Settings, project: str) -> ProjectSpec:
    configure_libraries(settings, pipelines=True)
    return get_project(project)


def _submit(settings: Settings, pipeline: Any, **params: Any) -> Any:
    """Run ``pipeline`` with these settings as its ``run_settings`` parameter (no secrets); a failed step
    comes back as our own error with its reasons, not ZenML's. The run is marked while it lives, so a
    killed one is audited by the next command."""
    import contextlib

    from zenml.client import Client

    from mlops.governance.runs import tracked
    from mlops.steps.tracing import record_run, step_ended, step_started

    with tracked(settings, params["project"], pipeline.name) as run_name:
        try:
            # a span per step (tracing on: OTEL_TRACES_EXPORTER), one trace per run
            run = pipeline.with_options(run_name=run_name, on_start=step_started, on_end=step_ended)(
                run_settings=settings.step_parameters(), **params
            )
        except RuntimeError as exc:
            with contextlib.suppress(KeyError):
                record_run(Client().get_pipeline_run(run_name, allow_name_prefix_match=False), settings)
            raise _step_failure(run_name) or exc from None
    if run is None:  # only for orchestrators that return before the run exists
        raise MlopsError(f"{pipeline.name} was submitted but returned no run")
    finished = Client().get_pipeline_run(run.id)
    record_run(finished, settings)
    return finished


def _step_failure(run_name: str) -> MlopsError | None:
    """The failed step of this run (not the latest one: runs may overlap) as our error, rebuilt from
    the data its failure hook stored (``steps.hooks.ERROR_METADATA``): type, message, reasons, hint."""
    from zenml.client import Client

    from mlops.steps.hooks import ERROR_METADATA

    try:
        run = Client().get_pipeline_run(run_name, allow_name_prefix_match=False)
    except KeyError:
        return None
    for name, step_run in run.steps.items():
        context = f"step {name!r} of run {run.name} failed: "
        data = step_run.run_metadata.get(ERROR_METADATA)
        if isinstance(data, dict):
            return error_from_data(data, context=context)
        info = step_run.exception_info
        if info is not None and info.message:  # no recorded error (the hook could not write it)
            return MlopsError(context + info.message)
    return None


def run_outputs(run: Any) -> dict[str, Any]:
    """The decision of a training run, from a hydrated run (as ``_submit`` returns it)."""
    out: dict[str, Any] = {"zenml_run_id": str(run.id), "zenml_run_name": run.name, "status": str(run.status)}
    steps = run.steps
    if "register_model" in steps:
        out["model"] = steps["register_model"].outputs["mlflow_model_version"][0].load()
    if "search_hyperparameters" in steps:
        search = steps["search_hyperparameters"].outputs["search"][0].load()
        if search:
            out["search"] = search
    if "evaluate_model" in steps:
        out["metrics"] = steps["evaluate_model"].outputs["metrics"][0].load()
    if "export_onnx" in steps:
        out["onnx_parity"] = steps["export_onnx"].outputs["onnx_parity"][0].load()
    if "promote_model" in steps:
        out["promotion"] = steps["promote_model"].outputs["promotion_decision"][0].load()
    return out
