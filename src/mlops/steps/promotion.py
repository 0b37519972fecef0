"""Promotion stage for GitOps: a person's decision carried out (and audited) as a pipeline run."""

from __future__ import annotations

from typing import Annotated, Any

from zenml import log_metadata, step

from mlops.governance.promote import manual_promote
from mlops.projects import get_project
from mlops.settings import Settings
from mlops.steps.hooks import run_failed, run_succeeded


@step(enable_cache=False, on_failure=run_failed, on_success=run_succeeded)
def promote_version(
    project: str, version: str, to: str, reason: str, approver: str, run_settings: dict[str, Any]
) -> Annotated[dict[str, Any], "promotion_event"]:
    """Re-validates on a fresh holdout, then moves the alias by compare-and-set (see manual_promote)."""
    settings = Settings.from_step_parameters(run_settings)
    event = manual_promote(settings, get_project(project), version, to=to, reason=reason, approver=approver)
    result = event.as_dict()
    meta: dict[str, Any] = {"promotion": result}
    log_metadata(meta)
    return result
