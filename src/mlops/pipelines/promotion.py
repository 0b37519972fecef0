"""The promotion pipeline: what `promote-production.yml` runs after a release is approved."""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from mlops.steps.promotion import promote_version


@pipeline(enable_cache=False)
def promotion_pipeline(
    run_settings: dict[str, Any], project: str, version: str, to: str, reason: str, approver: str
) -> None:
    promote_version(
        project=project, version=version, to=to, reason=reason, approver=approver, run_settings=run_settings
    )
