"""Drift monitoring: the serving model's training data against the recent prediction log (or a file)."""

from __future__ import annotations

from zenml import pipeline

from mlops.steps.monitoring import detect_drift, drift_inputs


@pipeline(enable_cache=False)
def monitoring_pipeline(
    project: str, alias: str = "production", input_path: str = "", window: int = 5_000
) -> None:
    reference, current, version = drift_inputs(
        project=project, alias=alias, input_path=input_path, window=window
    )
    detect_drift(reference, current, version, project=project)
