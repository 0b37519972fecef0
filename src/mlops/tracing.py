"""OpenTelemetry tracing of the service and the pipeline steps: off unless ``OTEL_TRACES_EXPORTER`` says.

Configured from the standard variables only, so an operator who knows OpenTelemetry needs nothing
of ours: ``OTEL_TRACES_EXPORTER`` (``none``, the default: off; ``otlp``: OTLP over HTTP/protobuf;
``console``: JSON on stdout; several, comma-separated), ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``,
``_HEADERS``, ``_TIMEOUT``, ``_COMPRESSION``, ``_CERTIFICATE`` (read by the exporter itself),
``OTEL_BSP_*`` (the batch processor), ``OTEL_TRACES_SAMPLER[_ARG]`` (the provider),
``OTEL_SERVICE_NAME`` (default ``mlops-<project>``), ``OTEL_RESOURCE_ATTRIBUTES`` (win over ours),
``OTEL_SDK_DISABLED``. Only the HTTP exporter ships (``OTEL_EXPORTER_OTLP_PROTOCOL=grpc`` is refused
with a hint rather than silently ignored).

Off costs nothing on the hot path: no OpenTelemetry module is imported, the app is not instrumented,
and the code that traces reads one module attribute, ``tracer``, which stays None.

Our provider is private unless nobody set the process's global one: ZenML 0.98 sets a global
provider only inside its own server process (``zenml.zen_server.otel``, when a ``ZENML_SERVER_OTEL_*``
or the standard OTLP endpoint variable is set) and its step-log stores use their own
``LoggerProvider``; MLflow 3.17's tracing keeps an isolated provider
(``MLFLOW_USE_DEFAULT_TRACER_PROVIDER`` defaults to true). So in the service, the CLI and the steps
ours becomes the global one, which instrumentations a deployment adds itself then share; where a
global one exists already, ours stays private and only our spans use it.

Tests install an exporter of their own (``configure(settings, exporter=InMemorySpanExporter())``):
it gets every span synchronously, as it ends, and leaves the global provider alone.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from mlops.errors import UsageError
from mlops.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

logger = logging.getLogger(__name__)

EXPORTERS = ("none", "otlp", "console")
PROTOCOLS = ("http/protobuf", "")
SCOPE = "mlops"  # the instrumentation scope of our own spans

# None while tracing is off: the one thing the hot path reads.
tracer: Tracer | None = None
provider: TracerProvider | None = None
_configured_from: str | None = None  # "environment" or "test": what set the current provider
_FIXED_IDS: ContextVar[tuple[int, int] | None] = ContextVar("mlops_fixed_span_ids", default=None)


def exporter_names(environ: dict[str, str] | os._Environ[str] | None = None) -> list[str]:
    """The exporters ``OTEL_TRACES_EXPORTER`` names, ``[]`` when tracing is off; a clear error otherwise."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    value = env.get("OTEL_TRACES_EXPORTER", "none")
    names = [n.strip().lower() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in EXPORTERS]
    if unknown:
        raise UsageError(
            f"OTEL_TRACES_EXPORTER={value!r}: unknown exporter {unknown[0]!r}",
            hint=f"one or more of {', '.join(EXPORTERS)} (comma-separated); unset it to leave tracing off",
        )
    if "none" in names:  # as the SDK reads it: "none" switches tracing off whatever else is listed
        return []
    protocol = env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", env.get("OTEL_EXPORTER_OTLP_PROTOCOL", ""))
    if "otlp" in names and protocol.strip().lower() not in PROTOCOLS:
        raise UsageError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: only OTLP over HTTP is installed",
            hint="set it to http/protobuf (or unset it) and point OTEL_EXPORTER_OTLP_ENDPOINT at the "
            "collector's HTTP port (4318)",
        )
    return list(dict.fromkeys(names))


def configure(
    settings: Settings, *, component: str = "service", exporter: SpanExporter | None = None
) -> bool:
    """Set up tracing for this process from the ``OTEL_*`` variables; True when it is on.

    Called by the entry points (the service's app factory, the pipeline steps); a second call from
    the environment keeps the first provider. ``exporter`` (tests): replace whatever is configured
    with a provider that hands every span to it as the span ends."""
    global tracer, provider, _configured_from
    if exporter is None:
        names = exporter_names()
        if not names:
            return tracer is not None and _configured_from == "test"  # a test's provider stays
        if _configured_from == "environment":
            return True
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    made = TracerProvider(resource=_resource(settings, component), id_generator=_id_generator())
    if exporter is not None:
        made.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        for name in names:
            made.add_span_processor(BatchSpanProcessor(_exporter(name)))
        _make_global(made)
    provider, _configured_from = made, "test" if exporter is not None else "environment"
    tracer = made.get_tracer(SCOPE)
    logger.info("tracing on: %s", "test exporter" if exporter is not None else ", ".join(names))
    return True


def disable() -> None:
    """Tracing off for this process from now on (tests; what is already traced stays traced)."""
    global tracer, provider, _configured_from
    if provider is not None:
        provider.force_flush()
    tracer, provider, _configured_from = None, None, None


def flush(timeout_s: float = 5.0) -> None:
    """Export what the batch processors hold (a graceful shutdown; the SDK also flushes at exit)."""
    if provider is not None:
        provider.force_flush(int(timeout_s * 1000))


def current_trace_id() -> str | None:
    """The current trace's id as 32 hex digits (the prediction log's ``trace_id``), None when off."""
    if tracer is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def trace_id_of(span: Span) -> str:
    return format(span.get_span_context().trace_id, "032x")


@contextmanager
def span(name: str, attributes: dict[str, Any] | None = None) -> Iterator[Span | None]:
    """A span around a block, current while it runs (None when off: the block runs as is). An
    exception leaving the block is recorded on it and sets its status to error."""
    if tracer is None:
        yield None
        return
    with tracer.start_as_current_span(name, attributes=attributes) as current:
        yield current


def annotate(attributes: dict[str, Any]) -> None:
    """Attributes on the current span (nothing when off, or outside any span)."""
    if tracer is None:
        return
    from opentelemetry import trace

    trace.get_current_span().set_attributes(attributes)


def failed(current: Span | None, message: str, attributes: dict[str, Any] | None = None) -> None:
    """Mark ``current`` (a ``span`` block's) as failed with ``message``, for an error handled inside
    the block (one that leaves it is recorded already). Nothing when off."""
    if current is None:
        return
    from opentelemetry.trace import Status, StatusCode

    if attributes:
        current.set_attributes(attributes)
    current.set_status(Status(StatusCode.ERROR, message))


def root_span(
    name: str,
    trace_id: int,
    span_id: int,
    *,
    attributes: dict[str, Any] | None = None,
    start_time: int | None = None,
) -> Span | None:
    """Start (not end) a root span with the ids given rather than random ones: a span that others,
    elsewhere, already name as their parent (a pipeline run: ``mlops.steps.tracing``). None when off."""
    if tracer is None:
        return None
    from opentelemetry.context import Context

    token = _FIXED_IDS.set((trace_id, span_id))
    try:  # an empty context: no parent, whatever is current here
        return tracer.start_span(name, Context(), attributes=attributes, start_time=start_time)
    finally:
        _FIXED_IDS.reset(token)


def _id_generator() -> Any:
    """Random ids (the SDK's), except while ``root_span`` asks for given ones."""
    from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

    class Ids(RandomIdGenerator):
        def generate_span_id(self) -> int:
            fixed = _FIXED_IDS.get()
            return fixed[1] if fixed is not None else super().generate_span_id()

        def generate_trace_id(self) -> int:
            fixed = _FIXED_IDS.get()
            return fixed[0] if fixed is not None else super().generate_trace_id()

    return Ids()


def _resource(settings: Settings, component: str) -> Any:
    """Ours (service name ``mlops-<project>``, the project, the component) under what the operator set."""
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource

    from mlops import __version__

    ours: dict[str, Any] = {
        "service.name": f"mlops-{settings.project}",
        "service.namespace": "mlops",
        "service.version": __version__,
        "mlops.project": settings.project,
        "mlops.component": component,
    }
    operators = OTELResourceDetector().detect().attributes  # OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME
    return Resource.create({**ours, **operators})


def _exporter(name: str) -> SpanExporter:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(service_name=None)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout, compression: from OTEL_EXPORTER_OTLP_*


def _make_global(made: TracerProvider) -> None:
    """Ours as the process's global provider unless one is set already (then it stays private)."""
    from opentelemetry import trace

    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        trace.set_tracer_provider(made)
    else:
        logger.info("tracing: a global tracer provider is set already; ours stays private to mlops")
