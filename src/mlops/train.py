"""Run the training pipeline on the active ZenML stack and return what it decided."""

from __future__ import annotations

from typing import Any

from mlops.projects import get_project
from mlops.settings import Settings, apply_environment


def run_training(settings: Settings, project: str) -> dict[str, Any]:
    apply_environment(settings)
    spec = get_project(project)
    from zenml import Model

    from mlops.pipelines.training import training_pipeline

    configured = training_pipeline.with_options(
        model=Model(
            name=settings.registered_model_name(spec.name),
            description=spec.description,
            tags=[spec.name],
        ),
    )
    run = configured(project=spec.name, test_size=settings.test_size, seed=settings.seed)
    return run_outputs(run)


def run_outputs(run: Any) -> dict[str, Any]:
    from zenml.client import Client

    run = Client().get_pipeline_run(run.id)
    out: dict[str, Any] = {"zenml_run_id": str(run.id), "zenml_run_name": run.name, "status": str(run.status)}
    steps = run.steps
    if "register_model" in steps:
        out["model"] = steps["register_model"].outputs["mlflow_model_version"][0].load()
    if "evaluate_model" in steps:
        out["metrics"] = steps["evaluate_model"].outputs["metrics"][0].load()
    if "export_onnx" in steps:
        out["onnx_parity"] = steps["export_onnx"].outputs["onnx_parity"][0].load()
    if "promote_model" in steps:
        out["promotion"] = steps["promote_model"].outputs["promotion_decision"][0].load()
    return out
