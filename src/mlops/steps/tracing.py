"""A span per pipeline step, from ZenML's step hooks: ``step_started`` (``on_start``) and
``step_ended`` (``on_end``), attached once per pipeline (a static pipeline passes its hooks to each
step as defaults).

Hooks rather than a decorator on every step function: one line per pipeline, and ZenML fires them
in the process that runs the step, whatever the orchestrator (in-process for the embedded default,
a pod per step on Kubernetes). That process configures tracing itself (``mlops.tracing.configure``,
from its own ``OTEL_*`` variables), so nothing needs to cross from the CLI to a pod.

One trace per pipeline run, in any number of processes: the trace id *is* the ZenML run's id (its
UUID's 128 bits, so ``zenml pipeline runs describe`` and the tracing backend name the same thing),
and every step's span is a child of one run span whose id is derived from the run id too.
``record_run`` (the runner, after the run) emits that run span with the run's own start and end
times; until then a backend shows the steps under a parent it has not received yet.

Off (``OTEL_TRACES_EXPORTER`` unset or ``none``) the hooks return at once: no ZenML call, no
OpenTelemetry import.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from typing import Any
from uuid import UUID

from mlops import tracing
from mlops.settings import Settings

logger = logging.getLogger(__name__)
_open: dict[str, tuple[Any, object]] = {}  # step run id -> (its span, the context token to detach)


def step_started() -> None:
    """``on_start``: open the step's span (current while the step runs: spans of ours inside nest)."""
    if tracing.tracer is None and not tracing.exporter_names():
        return  # off: not even the step context is read
    from opentelemetry import context
    from zenml import get_step_context

    ctx = get_step_context()
    settings = _settings(ctx)
    if not tracing.configure(settings, component="pipeline") or tracing.tracer is None:
        return

    run, step_run = ctx.pipeline_run, ctx.step_run
    attributes = {
        "zenml.pipeline": run.pipeline.name if run.pipeline else "",
        "zenml.run_id": str(run.id),
        "zenml.run_name": run.name,
        "zenml.step": step_run.name,
        "zenml.step_run_id": str(step_run.id),
        "mlops.project": str(step_run.config.parameters.get("project", settings.project)),
    }
    span = tracing.tracer.start_span(f"step {step_run.name}", _run_context(run.id), attributes=attributes)
    token = context.attach(_with_span(span))
    _open[str(step_run.id)] = (span, token)


def step_ended(exception: BaseException | None = None) -> None:
    """``on_end``: close the step's span; a failed step's span records the exception, status error."""
    if not _open:
        return
    from opentelemetry import context
    from zenml import get_step_context

    entry = _open.pop(str(get_step_context().step_run.id), None)
    if entry is None:
        return
    span, token = entry
    if exception is not None:
        span.record_exception(exception)
        tracing.failed(span, f"{type(exception).__name__}: {exception}")
    span.end()
    with contextlib.suppress(ValueError):  # attached in another context (a hook run elsewhere)
        context.detach(token)  # type: ignore[arg-type]


def record_run(run: Any, settings: Settings) -> None:
    """Emit the run span the steps' spans hang under: the run's name, its start and end times, its
    status. For the runner to call once the run is over, failed or not (nothing when tracing is off)."""
    if tracing.tracer is None and not tracing.exporter_names():
        return
    try:
        _record_run(run, settings)
    except Exception:  # the run is over and its outcome stands: a tracing error must not change it
        logger.warning(
            "tracing: could not record the run span of %s", getattr(run, "name", run), exc_info=True
        )


def _record_run(run: Any, settings: Settings) -> None:
    if not tracing.configure(settings, component="pipeline"):
        return
    pipeline = run.pipeline.name if run.pipeline else ""
    status = str(getattr(run.status, "value", run.status))
    attributes = {
        "zenml.pipeline": pipeline,
        "zenml.run_id": str(run.id),
        "zenml.run_name": run.name,
        "zenml.status": status,
    }
    span = tracing.root_span(
        f"pipeline {pipeline}",
        run.id.int,
        run_span_id(run.id),
        attributes=attributes,
        start_time=_ns(getattr(run, "start_time", None)),
    )
    if span is None:
        return
    if status == "failed":
        tracing.failed(span, f"{pipeline} run {run.name} failed")
    span.end(end_time=_ns(getattr(run, "end_time", None)))


# ----- the run's ids -----
def run_span_id(run_id: UUID) -> int:
    """The run span's id: 64 bits of a hash of the run id (never 0, which is invalid)."""
    return int.from_bytes(hashlib.sha256(run_id.bytes).digest()[:8], "big") or 1


def _run_context(run_id: UUID) -> Any:
    """A context whose current span is the run span (remote: it is emitted by ``record_run``)."""
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    parent = SpanContext(
        trace_id=run_id.int, span_id=run_span_id(run_id), is_remote=True, trace_flags=TraceFlags(1)
    )
    return trace.set_span_in_context(NonRecordingSpan(parent))


def _ns(moment: Any) -> int | None:
    if moment is None:
        return None
    from datetime import UTC

    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # ZenML stores UTC, naive
    return int(aware.timestamp() * 1e9)


# ----- helpers -----
def _with_span(span: Any) -> Any:
    from opentelemetry import trace

    return trace.set_span_in_context(span)


def _settings(ctx: Any) -> Settings:
    """The run's settings (its ``run_settings`` parameter) for the project and state folder."""
    values = ctx.step_run.config.parameters.get("run_settings")
    if values is None and ctx.pipeline_run.config.parameters:
        values = ctx.pipeline_run.config.parameters.get("run_settings")
    try:
        return Settings.from_step_parameters(dict(values or {}))
    except Exception:  # tracing must never fail a step: fall back to the process's settings
        logger.debug("tracing: no run settings in the step context", exc_info=True)
        return Settings()
