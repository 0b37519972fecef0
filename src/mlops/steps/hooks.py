"""Once-per-run governance hooks: every pipeline run's outcome lands in the audit log.

ZenML's pipeline-level ``on_success``/``on_failure`` fire once per *step* in static pipelines, so
these are attached to steps instead: ``run_failed`` to every step (a run stops at its first failing
step, so it fires once) and ``run_succeeded`` to the last step only.
"""

from __future__ import annotations

import logging
from typing import Any

from mlops.settings import get_settings
from mlops.stores.audit import AuditEvent, AuditLog

logger = logging.getLogger(__name__)


def _run_facts() -> dict[str, Any]:
    from zenml import get_step_context

    ctx = get_step_context()
    run = ctx.pipeline_run
    stack = run.stack.name if run.stack else "unknown"
    user = run.user.name if run.user else "unknown"
    return {
        "zenml_run_id": str(run.id),
        "zenml_run_name": run.name,
        "pipeline": run.pipeline.name if run.pipeline else "",
        "step": ctx.step_run.name,
        "stack": stack,
        "zenml_user": user,
        "project": str(ctx.step_run.config.parameters.get("project", get_settings().project)),
    }


def _record(decision: str, reason: str, facts: dict[str, Any]) -> AuditEvent:
    settings = get_settings()
    project = facts["project"]
    return AuditLog(settings.audit_url).record(
        AuditEvent(
            action="pipeline",
            project=project,
            model_name=settings.registered_model_name(project),
            decision=decision,
            reason=reason,
            actor=f"{settings.who} (zenml: {facts['zenml_user']})",
            details=facts,
        )
    )


def run_failed(exception: BaseException) -> None:
    facts = _run_facts()
    reason = f"{facts['pipeline']} failed in step {facts['step']!r} on stack {facts['stack']!r}: {exception}"
    _record("failed", reason, facts)
    alert(reason, facts)


def run_succeeded() -> None:
    facts = _run_facts()
    _record("succeeded", f"{facts['pipeline']} succeeded on stack {facts['stack']!r}", facts)


def alert(message: str, facts: dict[str, Any]) -> None:
    """POST a failure to the configured webhook; an unreachable target is logged, never raised."""
    url = get_settings().alert_webhook_url
    if not url:
        return
    import httpx

    try:
        httpx.post(url, json={"text": message, **facts}, timeout=5.0).raise_for_status()
    except httpx.HTTPError as exc:
        logger.warning("alert webhook %s failed: %s", url, exc)
