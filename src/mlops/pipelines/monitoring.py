"""Drift monitoring: the serving model's training data against the recent prediction log (or a file)."""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from mlops.steps.monitoring import detect_drift, drift_inputs


@pipeline(enable_cache=False)
def monitoring_pipeline(
    run_settings: dict[str, Any],
    project: str,
    alias: str = "production",
    input_path: str = "",
    window: int = 5_000,
) -> None:
    reference, current, version = drift_inputs(
        project=project, alias=alias, input_path=input_path, window=window, run_settings=run_settings
    )
    detect_drift(reference, current, version, project=project, run_settings=run_settings)
