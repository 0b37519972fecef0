"""Once-per-run governance hooks: every pipeline run's outcome lands in the audit log.

ZenML's pipeline-level ``on_success``/``on_failure`` fire once per *step* in static pipelines, so
these are attached to steps instead: ``run_failed`` to every step (a run stops at its first failing
step, so it fires once) and ``run_succeeded`` to the last step only.
"""

from __future__ import annotations

import logging
from typing import Any

from mlops.errors import error_data
from mlops.settings import Settings
from mlops.stores.audit import AuditEvent, AuditLog

logger = logging.getLogger(__name__)
# Step run metadata key of a failed step's error, as data (``errors.error_data``): the runner
# rebuilds the error from it (type, message, reasons, hint), never from the rendered text.
ERROR_METADATA = "mlops_error"


def _run_settings() -> Settings:
    """The run's settings: its ``run_settings`` parameter (non-secret), secrets from this process."""
    from zenml import get_step_context

    ctx = get_step_context()
    values = ctx.step_run.config.parameters.get("run_settings")
    if values is None and ctx.pipeline_run.config.parameters:
        values = ctx.pipeline_run.config.parameters.get("run_settings")
    return Settings.from_step_parameters(dict(values or {}))


def _run_facts(settings: Settings) -> dict[str, Any]:
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
        "project": str(ctx.step_run.config.parameters.get("project", settings.project)),
    }


def _record(settings: Settings, decision: str, reason: str, facts: dict[str, Any]) -> AuditEvent:
    project = facts["project"]
    return AuditLog.for_settings(settings).record(
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
    record_error(exception)  # first: whatever happens to the audit, the runner gets the error back
    settings = _run_settings()
    facts = _run_facts(settings)
    reason = f"{facts['pipeline']} failed in step {facts['step']!r} on stack {facts['stack']!r}: {exception}"
    _record(settings, "failed", reason, facts)
    alert(settings, reason, facts)


def run_succeeded() -> None:
    settings = _run_settings()
    facts = _run_facts(settings)
    _record(settings, "succeeded", f"{facts['pipeline']} succeeded on stack {facts['stack']!r}", facts)


def record_error(exception: BaseException) -> None:
    """Store the failing step's error as data in its step run metadata (``ERROR_METADATA``)."""
    from zenml import log_metadata

    try:
        log_metadata({ERROR_METADATA: error_data(exception)})
    except Exception as exc:  # the store may be down: the runner then reports ZenML's own failure
        logger.warning("could not record the step's error as metadata: %s", exc)


def alert(settings: Settings, message: str, facts: dict[str, Any]) -> None:
    """POST a failure to the configured webhook: ``{"text": message, **facts}`` (the shape a
    Slack-compatible incoming webhook takes). A target that is down, refuses, answers an error or
    is not a valid URL is logged, never raised: the run's outcome stays the step's own. The log
    names the host only, because a chat webhook's token lives in its path."""
    url = settings.alert_webhook_url
    if not url:
        return
    import httpx

    where = _webhook_host(url)
    try:
        response = httpx.post(url, json={"text": message, **facts}, timeout=5.0)
    # InvalidURL is no HTTPError; the text of either holds no URL (HTTPStatusError's does: not raised)
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        logger.warning("alert webhook %s failed: %s: %s", where, type(exc).__name__, exc)
        return
    if response.is_error:
        logger.warning("alert webhook %s answered HTTP %s", where, response.status_code)


def _webhook_host(url: str) -> str:
    """``scheme://host[:port]`` of ``url``, without its path, query or credentials."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}"
    except ValueError:
        return "(an invalid URL)"
