"""Tracing: the spans of a prediction, of a model load and swap, of the pipeline steps; the trace id in
the prediction log; nothing at all when tracing is off; the OTLP exporter configured from OTEL_*.

Spans are read from OpenTelemetry's ``InMemorySpanExporter`` (``tracing.configure``'s test hook);
the OTLP test runs the service in a subprocess (a process's global provider is set once) against a
collector of our own that decodes what it receives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from tests.unit.serving.conftest import ADMIN, EXAMPLE

from mlops import tracing
from mlops.errors import UsageError
from mlops.serving.app import create_app
from mlops.stores.predictions import get_prediction


@pytest.fixture(autouse=True)
def _tracing_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts and ends with tracing off, whatever the environment says."""
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    tracing.disable()
    yield
    tracing.disable()


@pytest.fixture
def spans(shared_settings) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    assert tracing.configure(shared_settings, exporter=exporter)
    return exporter


def _own_log(settings: Any, tmp_path: Path) -> Any:
    """The shared registry with a prediction log of this test's own."""
    return settings.model_copy(update={"prediction_log_url": f"sqlite:///{tmp_path / 'predictions.db'}"})


def _hex(number: int, digits: int = 32) -> str:
    return format(number, f"0{digits}x")


def _named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


# ----- the service -----
def test_predict_spans_nest_and_the_log_row_carries_the_trace_id(shared_settings, spans, tmp_path) -> None:
    settings = _own_log(shared_settings, tmp_path)
    with TestClient(create_app(settings)) as client:
        one = client.post("/predict", json=EXAMPLE)
        batch = client.post("/predict/batch", json={"rows": [EXAMPLE] * 3})
        assert client.get("/health").status_code == 200  # a probe: not traced
    assert one.status_code == 200 and batch.status_code == 200
    finished = spans.get_finished_spans()
    assert not [s for s in finished if "/health" in s.name]

    (server,) = _named(finished, "POST /predict")
    assert server.kind == SpanKind.SERVER and server.attributes["http.status_code"] == 200
    scores = _named(finished, "model.score")
    (score,) = [s for s in scores if s.context.trace_id == server.context.trace_id]
    assert score.parent is not None and score.parent.span_id == server.context.span_id  # a child
    assert score.kind == SpanKind.INTERNAL
    assert dict(score.attributes) == {
        "model.name": "iris-classifier",
        "model.version": "1",
        "model.runtime": "onnx",
        "model.rows": 1,
        "mlops.request_id": one.json()["request_id"],
    }
    row = get_prediction(settings.prediction_log_db_url, one.json()["request_id"])
    assert row is not None and row["trace_id"] == _hex(server.context.trace_id)

    (batch_server,) = _named(finished, "POST /predict/batch")
    (batch_score,) = [s for s in scores if s.context.trace_id == batch_server.context.trace_id]
    assert batch_score.attributes["model.rows"] == 3
    for prediction in batch.json()["predictions"]:
        row = get_prediction(settings.prediction_log_db_url, prediction["request_id"])
        assert row is not None and row["trace_id"] == _hex(batch_server.context.trace_id)
    flushes = _named(finished, "prediction_log.flush")
    assert flushes and sum(int(s.attributes["prediction_log.rows"]) for s in flushes) == 4


def test_model_load_and_swap_spans(service_settings, registered_iris) -> None:
    """Start: a ``model.swap`` from nothing to version 1 around its ``model.load``. A reload after
    the alias moved: a swap from 1 to 2, inside the request that asked for it."""
    from tests.support.training import train_register_promote

    from mlops.registry import Registry

    exporter = InMemorySpanExporter()
    tracing.configure(service_settings, exporter=exporter)
    with TestClient(create_app(service_settings)) as client:
        started = exporter.get_finished_spans()
        second = train_register_promote(service_settings, "iris", seed=service_settings.seed + 1)
        version = second["model"]["version"]
        Registry(service_settings, "iris").set_alias("production", version)
        assert client.post("/reload", headers=ADMIN).json()["model_version"] == version
    finished = exporter.get_finished_spans()

    (first,) = [s for s in _named(started, "model.swap") if s.attributes["model.source"] == "registry"]
    assert first.attributes["model.from_version"] == "" and first.attributes["model.to_version"] == "1"
    assert first.attributes["model.swap.result"] == "success" and first.attributes["model.runtime"] == "onnx"
    (load,) = [s for s in _named(started, "model.load") if s.attributes["model.source"] == "registry"]
    assert load.parent is not None and load.parent.span_id == first.context.span_id
    assert load.attributes["model.version"] == "1" and load.attributes["model.runtime"] == "onnx"

    (server,) = _named(finished, "POST /reload")
    (swap,) = [s for s in _named(finished, "model.swap") if s.context.trace_id == server.context.trace_id]
    assert swap.parent is not None and swap.parent.span_id == server.context.span_id
    assert swap.attributes["model.from_version"] == "1" and swap.attributes["model.to_version"] == version
    assert swap.attributes["model.swap.result"] == "success"
    (load,) = [s for s in _named(finished, "model.load") if s.context.trace_id == server.context.trace_id]
    assert load.parent is not None and load.parent.span_id == swap.context.span_id
    assert load.attributes["model.version"] == version and load.status.status_code == StatusCode.UNSET


def test_a_rejected_version_is_a_failed_swap(service_settings, registered_iris, corrupt_version) -> None:
    from tests.support.training import train_register_promote

    from mlops.registry import Registry

    exporter = InMemorySpanExporter()
    tracing.configure(service_settings, exporter=exporter)
    with TestClient(create_app(service_settings)) as client:
        version = train_register_promote(service_settings, "iris", seed=service_settings.seed + 1)["model"]
        corrupt_version(service_settings, "iris", version["version"])
        Registry(service_settings, "iris").set_alias("production", version["version"])
        assert client.post("/reload", headers=ADMIN).json()["model_version"] == "1"  # still serving 1
    (swap,) = [
        s for s in _named(exporter.get_finished_spans(), "model.swap") if s.attributes["model.from_version"]
    ]
    assert swap.attributes["model.swap.result"] == "rejected" and swap.status.status_code == StatusCode.ERROR
    assert f"version {version['version']} rejected" in (swap.status.description or "")
    (load,) = [
        s for s in exporter.get_finished_spans() if s.parent and s.parent.span_id == swap.context.span_id
    ]
    assert load.name == "model.load" and load.status.status_code == StatusCode.ERROR  # the exception left it
    assert load.events and load.events[0].name == "exception"


def test_off_nothing_is_traced_and_the_trace_id_is_null(shared_settings, tmp_path) -> None:
    """Tracing off (the default): the app is not instrumented, no span is recorded anywhere (not
    even by a provider a test installed before), the log's ``trace_id`` is NULL."""
    exporter = InMemorySpanExporter()
    tracing.configure(shared_settings, exporter=exporter)
    tracing.disable()
    settings = _own_log(shared_settings, tmp_path)
    app = create_app(settings)
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)
    with TestClient(app) as client:
        answer = client.post("/predict", json=EXAMPLE).json()
        assert tracing.current_trace_id() is None
    assert exporter.get_finished_spans() == ()
    row = get_prediction(settings.prediction_log_db_url, answer["request_id"])
    assert row is not None and row["trace_id"] is None


def test_an_unsampled_request_leaves_no_span_and_no_trace_id(shared_settings, tmp_path, monkeypatch) -> None:
    """The sampler (``OTEL_TRACES_SAMPLER``) decides; the log names only traces that are exported."""
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    exporter = InMemorySpanExporter()
    tracing.configure(shared_settings, exporter=exporter)
    settings = _own_log(shared_settings, tmp_path)
    with TestClient(create_app(settings)) as client:
        answer = client.post("/predict", json=EXAMPLE).json()
    assert not [s for s in exporter.get_finished_spans() if s.name in {"POST /predict", "model.score"}]
    row = get_prediction(settings.prediction_log_db_url, answer["request_id"])
    assert row is not None and row["trace_id"] is None


# ----- configuration -----
@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({}, []),
        ({"OTEL_TRACES_EXPORTER": "none"}, []),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": " OTLP , console,otlp"}, ["otlp", "console"]),
        ({"OTEL_TRACES_EXPORTER": "otlp,none"}, []),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, []),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}, ["otlp"]),
    ],
)
def test_exporter_names(environ: dict[str, str], names: list[str]) -> None:
    assert tracing.exporter_names(environ) == names


@pytest.mark.parametrize(
    ("environ", "message", "hint"),
    [
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "unknown exporter 'jaeger'", "none, otlp, console"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "only OTLP over HTTP",
            "http/protobuf",
        ),
    ],
)
def test_bad_exporter_settings_are_refused_with_a_hint(environ, message: str, hint: str) -> None:
    with pytest.raises(UsageError) as refused:
        tracing.exporter_names(environ)
    assert message in refused.value.message and hint in refused.value.hint


def test_the_service_refuses_to_start_on_a_bad_exporter(shared_settings, monkeypatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "zipkin")
    with pytest.raises(UsageError, match="zipkin"):
        create_app(shared_settings)


class _Collector(ThreadingHTTPServer):
    """An OTLP/HTTP collector on loopback: keeps the decoded ``ExportTraceServiceRequest``s."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.paths: list[str] = []
        super().__init__(("127.0.0.1", 0), _Receive)


class _Receive(BaseHTTPRequestHandler):
    server: _Collector

    def do_POST(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.server.requests.append(request)
        self.server.paths.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_the_service_exports_over_otlp_from_the_otel_variables(shared_settings) -> None:
    """The real path: ``OTEL_TRACES_EXPORTER=otlp`` and an endpoint; the batch processor's spans reach
    a collector by the service's shutdown, under ``service.name`` ``mlops-iris`` plus the operator's
    resource attributes, and the log row names the exported trace."""
    collector = _Collector()
    thread = threading.Thread(target=collector.serve_forever, daemon=True)
    thread.start()
    try:
        code = (
            "import json\n"
            "from fastapi.testclient import TestClient\n"
            "from mlops.serving.app import create_app\n"
            "with TestClient(create_app()) as c:\n"
            f"    answer = c.post('/predict', json={EXAMPLE!r}).json()\n"
            "print(json.dumps(answer))\n"
        )
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("OTEL_")},
            "MLOPS_HOME": str(shared_settings.home),
            "MLOPS_MODEL_CACHE": "false",
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.server_address[1]}",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=test",
        }
        out = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180
        )
        assert out.returncode == 0, out.stderr[-3000:]
    finally:
        collector.shutdown()
        collector.server_close()
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert set(collector.paths) == {"/v1/traces"}
    exported: dict[str, Any] = {}
    for request in collector.requests:
        for resource_spans in request.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    exported[span.name] = (resource, span)
    assert {"POST /predict", "model.score", "model.load", "model.swap"} <= set(exported)
    resource, score = exported["model.score"]
    assert resource["service.name"] == "mlops-iris" and resource["mlops.component"] == "service"
    assert resource["deployment.environment.name"] == "test"
    _, server = exported["POST /predict"]
    assert score.trace_id == server.trace_id and score.parent_span_id == server.span_id
    row = get_prediction(shared_settings.prediction_log_db_url, answer["request_id"])
    assert row is not None and row["trace_id"] == score.trace_id.hex()


# ----- the pipeline steps -----
def test_step_hooks_are_free_when_off() -> None:
    """Off, the hooks return before asking ZenML for a step context (there is none here: on, they
    would raise)."""
    from mlops.steps.tracing import step_ended, step_started

    step_started()
    step_ended(None)


def test_each_step_is_a_span_of_one_trace_whose_id_is_the_run_id(shared_settings, tmp_path) -> None:
    """The batch pipeline with the hooks attached, on the session's ZenML store: a span per step, all
    in the trace whose id is the ZenML run's, under the run span ``record_run`` emits."""
    import pandas as pd
    from zenml.client import Client

    from mlops.configure import configure_libraries
    from mlops.pipelines.batch_inference import batch_inference_pipeline
    from mlops.steps.tracing import record_run, run_span_id, step_ended, step_started

    settings = configure_libraries(shared_settings, pipelines=True)
    exporter = InMemorySpanExporter()
    tracing.configure(settings, component="pipeline", exporter=exporter)
    source = tmp_path / "rows.csv"
    pd.DataFrame([EXAMPLE] * 5).to_csv(source, index=False)
    pipeline = batch_inference_pipeline.with_options(on_start=step_started, on_end=step_ended)
    run = pipeline(
        run_settings=settings.step_parameters(),
        project="iris",
        input_path=str(source),
        output_path=str(tmp_path / "scored.csv"),
        alias="production",
        chunk_rows=100,
    )
    run = Client().get_pipeline_run(run.id)
    record_run(run, settings)

    finished = exporter.get_finished_spans()
    steps = {s.attributes["zenml.step"]: s for s in finished if s.name.startswith("step ")}
    assert set(steps) == set(run.steps) == {"resolve_model", "score_batch"}
    (root,) = _named(finished, "pipeline batch_inference_pipeline")
    assert root.parent is None and root.context.trace_id == run.id.int
    assert root.context.span_id == run_span_id(run.id) and root.attributes["zenml.status"] == "completed"
    for name, span in steps.items():
        assert span.context.trace_id == run.id.int and span.parent is not None
        assert span.parent.span_id == root.context.span_id
        assert span.attributes["zenml.run_id"] == str(run.id) and span.name == f"step {name}"
        assert span.status.status_code == StatusCode.UNSET
        assert root.start_time <= span.start_time and span.end_time <= root.end_time
