"""Monitoring stage: reference and window in, drift report and recorded result out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from zenml import log_metadata, step
from zenml.types import HTMLString

from mlops.errors import NotFound
from mlops.monitoring import run as monitoring
from mlops.projects import get_project
from mlops.registry import Registry
from mlops.settings import Settings
from mlops.steps.hooks import run_failed, run_succeeded


@step(enable_cache=False, on_failure=run_failed)
def drift_inputs(
    project: str, alias: str, input_path: str, window: int, run_settings: dict[str, Any]
) -> tuple[
    Annotated[pd.DataFrame, "drift_reference"],
    Annotated[pd.DataFrame, "drift_current"],
    Annotated[str, "model_version"],
]:
    settings = Settings.from_step_parameters(run_settings)
    spec = get_project(project)
    version = Registry(settings, project).alias_version(alias)
    if version is None:
        raise NotFound(f"no model of {project!r} holds alias {alias!r}")
    reference = monitoring.reference_frame(settings, spec, version)
    current = monitoring.current_frame(settings, spec, Path(input_path) if input_path else None, window)
    log_metadata({"reference_rows": len(reference), "current_rows": len(current), "model_version": version})
    return reference, current, version


@step(enable_cache=False, on_failure=run_failed, on_success=run_succeeded)
def detect_drift(
    drift_reference: pd.DataFrame,
    drift_current: pd.DataFrame,
    model_version: str,
    project: str,
    run_settings: dict[str, Any],
) -> tuple[Annotated[HTMLString, "drift_report"], Annotated[dict[str, Any], "drift_result"]]:
    settings = Settings.from_step_parameters(run_settings)
    result, summary = monitoring.check(
        settings, get_project(project), model_version, drift_reference, drift_current
    )
    log_metadata({"drift": {k: v for k, v in summary.items() if k != "features"}})
    return HTMLString(result.html), summary
