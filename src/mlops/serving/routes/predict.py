"""POST /predict and /predict/batch: one route each, over the raw request.

A FastAPI body parameter costs more CPU than the model here: the body goes through ``json.loads``,
then a ``TypeAdapter``, dependencies are solved, and a return value is validated against the
response model (together ~2.4x the rest of the request). So these routes take the starlette
``Request`` and do each step once:

- the body is validated straight from its bytes by the generated row model (pydantic-core's JSON
  parser, ``model_validate_json``);
- the predict key is checked by ``security.check_request_key``, the same check as every route's;
- the answer is encoded once (``pydantic_core.to_json``) into a bytes ``Response`` (a returned
  ``Response`` is never validated against ``response_model``, which is there for the spec only);
- ONNX scores inline (~10 us a row: cheaper than a thread hop), the log record goes to a buffer.

When that fast validation fails, the body is read again as FastAPI reads a body parameter, in the
same order (JSON decoding, then the key, then the fields), so a client gets the same 400, 401, 403
or 422 (naming the field) as before. The OpenAPI spec still documents the request body
(``openapi_extra``; ``openapi_components`` puts its schemas in the spec), the response and every
error status (``responses``).

Cost (benchmarks/predict_cpu.py, against LeanPredict, the pure-ASGI answer before FastAPI that these
routes replace): 1.21x the CPU per request (medians of 5 interleaved runs: results/predict_cpu.json).
The difference is FastAPI's own middleware and router, which every route goes through.
"""

from __future__ import annotations

import asyncio
import email.message
import json
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import validation_error_definition, validation_error_response_definition
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema
from pydantic_core import to_json
from starlette.types import Receive, Scope, Send

from mlops import tracing
from mlops.runtime import LoadedModel
from mlops.serving import instruments
from mlops.serving.deps import current_model
from mlops.serving.prediction_writer import PredictionWriter
from mlops.serving.problems import NO_MODEL, NOT_JSON, problems
from mlops.serving.rollout import RolloutFollower, RolloutView
from mlops.serving.schemas import BatchPrediction, Prediction, batch_model, row_model
from mlops.serving.security import PREDICT_ERRORS, SECURITY_SCHEMES, check_request_key
from mlops.stores.predictions import Record

REF = "#/components/schemas/{model}"
TOO_MANY = {413: "More rows than the service's maximum"}


# ----- the body, read once -----
def _is_json(content_type: str | None) -> bool:
    """A JSON body: ``application/json`` or ``application/*+json`` (as FastAPI decides), or no
    content type at all (as the service has always accepted)."""
    if not content_type or content_type == "application/json":
        return True
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def _decode(body: bytes, as_json: bool) -> Any:
    """The body as FastAPI hands a body parameter to validation: None when empty, else the parsed
    JSON (a 422 at the offending position when malformed, a 400 when not text) or the raw bytes."""
    if not body:
        return None
    if not as_json:
        return body
    try:
        return json.loads(body)
    except json.JSONDecodeError as e:
        error = {"type": "json_invalid", "loc": ("body", e.pos), "msg": "JSON decode error"}
        raise RequestValidationError([{**error, "input": {}, "ctx": {"error": e.msg}}], body=e.doc) from e
    except Exception as e:  # not UTF-8, -16 or -32 text; nested too deep (as FastAPI: any other error)
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "There was an error parsing the body") from e


def _validate(model: type[BaseModel], value: Any) -> BaseModel:
    if value is None:
        missing = {"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}
        raise RequestValidationError([missing])
    try:
        return model.model_validate(value, from_attributes=True)
    except ValidationError as e:
        errors = e.errors(include_url=False)
        raise RequestValidationError([{**err, "loc": ("body", *err["loc"])} for err in errors]) from None


async def _read(request: Request, model: type[BaseModel], keys: list[str]) -> BaseModel:
    """The validated body, the predict key checked (when ``keys``), or the error FastAPI would give."""
    body = await _body(request.receive)
    as_json = _is_json(_content_type(request.scope["headers"]))
    if as_json and body:
        try:
            parsed = model.model_validate_json(body)  # the common case: one pass over the bytes
        except ValidationError:
            pass
        else:
            check_request_key(request, keys, required=False, what="predict")
            return parsed
    value = _decode(body, as_json)  # a body that is not JSON is refused before the key is checked
    check_request_key(request, keys, required=False, what="predict")
    return _validate(model, value)


async def _body(receive: Receive) -> bytes:
    """``Request.body()`` without its stream machinery (a third of the route's own time)."""
    message = await receive()
    body: bytes = message.get("body", b"")
    while message.get("more_body"):
        message = await receive()
        body += message.get("body", b"")
    return body


def _content_type(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"content-type":
            return value.decode("latin-1")
    return None


# ----- scoring and the answer -----
async def _predict(model: LoadedModel, rows: list[dict[str, Any]], state: dict[str, Any]) -> tuple[Any, Any]:
    """Score ``rows``; with tracing on, inside a ``model.score`` span whose trace id goes to the
    request's ``state`` (``trace_id``: the prediction log's column) when the trace is sampled. Off,
    this costs one attribute read."""
    tracer = tracing.tracer
    if tracer is None:
        return await _score(model, rows)
    attributes = {
        "model.name": model.name,
        "model.version": model.version,
        "model.runtime": model.runtime,
        "model.rows": len(rows),
        "mlops.request_id": state.get("request_id", ""),  # a batch's: its rows' ids are this plus -i
    }
    with tracer.start_as_current_span("model.score", attributes=attributes) as span:
        if span.is_recording():  # sampled: the log names only traces that are exported
            state["trace_id"] = tracing.trace_id_of(span)
        return await _score(model, rows)


async def _score(model: LoadedModel, rows: list[dict[str, Any]]) -> tuple[Any, Any]:
    if model.runtime == "onnx":  # tens of microseconds: cheaper inline than a thread hop
        return model.predict_rows(rows)
    return await asyncio.to_thread(model.predict_rows, rows)  # a native model takes milliseconds


def _results(
    model: LoadedModel,
    log: PredictionWriter,
    rows: list[dict[str, Any]],
    classes: Any,
    proba: Any,
    ids: list[str],
    started: float,
    context: dict[str, Any],
) -> list[dict[str, Any]]:
    """The answers, each submitted to the prediction log; ``context`` is the request's scope state
    (``trace_id`` when tracing is on, ``subject_hash`` when the client named a subject)."""
    names = model.spec.class_names
    trace_id, subject_hash = context.get("trace_id"), context.get("subject_hash")
    latency_ms = (time.perf_counter() - started) * 1000 / len(rows)
    now = datetime.now(UTC)
    out = []
    # Python numbers once per array: numpy scalars one by one cost twice as much (~2 us a row)
    for row, cls, p, request_id in zip(rows, classes.tolist(), proba.tolist(), ids, strict=True):
        label = names[cls]
        probabilities = {n: round(v, 6) for n, v in zip(names, p, strict=True)}
        instruments.prediction(model.version, label)
        log.submit(
            Record(
                request_id,
                now,
                model.spec.name,
                model.name,
                model.version,
                model.runtime,
                row,
                cls,
                label,
                probabilities,
                latency_ms,
                trace_id,
                subject_hash,
            )
        )
        out.append(
            {
                "prediction": cls,
                "label": label,
                "probabilities": probabilities,
                "model_version": model.version,
                "request_id": request_id,
            }
        )
    return out


class _JSONBytes(Response):
    """A 200 with a JSON body already encoded: ``Response`` without its header building. It names
    the version that answered (``X-Model-Version``) and, during a rollout, its record as this worker
    follows it (``X-Rollout``: id.generation)."""

    media_type = "application/json"

    def __init__(self, content: Any, version: str, rollout: bytes | None = None) -> None:
        self.body = to_json(content)
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-length", str(len(self.body)).encode()),
            _JSON_TYPE,
            (b"x-model-version", version.encode()),
        ]
        if rollout is not None:
            self.raw_headers.append((b"x-rollout", rollout))


_JSON_TYPE = (b"content-type", b"application/json")


# ----- a rollout: which version answers, and the shadow's copy -----
def _routing_key(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"x-routing-key":
            return value.decode("latin-1")
    return None


async def _score_rollout(
    follower: RolloutFollower,
    view: RolloutView,
    request: Request,
    model: LoadedModel,
    rows: list[dict[str, Any]],
    ids: list[str],
) -> tuple[LoadedModel, Any, Any, float]:
    """Score ``rows`` during a rollout: (the model that answered, classes, probabilities, start time).

    Canary: the candidate answers the routing key's requests (``X-Routing-Key``, else the request
    id), and production answers when the candidate raises (counted and logged; the client sees no
    error). Shadow: production answers, then the selected requests are queued for the candidate
    (never awaited: ``rollout.ShadowScorer``)."""
    if view.rollout.mode == "canary":
        candidate = view.route(_routing_key(request.scope["headers"]) or request.scope["state"]["request_id"])
        if candidate is not None:
            started = time.perf_counter()
            try:
                classes, proba = await _predict(candidate, rows, request.scope["state"])
            except Exception as exc:
                follower.canary_failed(candidate, ids, exc)
            else:
                follower.canary_result(candidate.version, "ok", len(rows), time.perf_counter() - started)
                return candidate, classes, proba, started
    started = time.perf_counter()
    classes, proba = await _predict(model, rows, request.scope["state"])
    if view.candidate is not None and view.rollout.mode == "shadow" and view.selects(ids[0]):
        follower.shadow.submit(view.candidate, rows, ids, classes)
    return model, classes, proba, started


# ----- the routes and their documentation -----
# X-Subject-Key (read by mlops.serving.middleware: only its keyed hash reaches the prediction log) is
# described in the 400 rather than declared as a header parameter: schemathesis then takes the
# generated headers for the whole header set and reports the configured X-API-Key as "ignored auth".
BAD_REQUEST = {
    400: NOT_JSON[400] + "; or the optional X-Subject-Key header (the request's subject, e.g. a patient "
    "number, for `mlops erase --subject`; only its keyed hash is stored) is blank, not UTF-8 or longer "
    "than 256 characters"
}


class RequestRoute(APIRoute):
    """A route whose endpoint takes the ``Request`` and returns a ``Response``. FastAPI documents it
    as any route (its responses, ``openapi_extra``); a request calls the endpoint directly: no
    dependency to solve, no body parameter, no response model, no per-request exit stacks (it has
    no dependency with ``yield``). Its ``HTTPException`` and ``RequestValidationError`` reach the
    app's exception handlers, as any route's do. It overrides ``handle`` (Starlette's route
    interface) rather than FastAPI's ``get_route_handler`` hook, whose wrapper still opens two exit
    stacks and an exception wrapper per request."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.methods and scope["method"] not in self.methods:
            await super().handle(scope, receive, send)  # 405, as any route
            return
        response = await self.endpoint(Request(scope, receive, send))
        await response(scope, receive, send)


def _documented(model: type[BaseModel], keys: list[str]) -> dict[str, Any]:
    """``openapi_extra``: the request body FastAPI would document for a ``model`` body parameter,
    and the key as the routes' security requirement when one is set."""
    body = {"content": {"application/json": {"schema": {"$ref": REF.format(model=model.__name__)}}}}
    extra: dict[str, Any] = {"requestBody": {**body, "required": True}}
    if keys:
        extra["security"] = [{name: []} for name in SECURITY_SCHEMES]
    return extra


def openapi_components(project: str) -> dict[str, dict[str, Any]]:
    """What the routes' ``$ref``s point to, for the app to add to its spec's ``components``."""
    models = [(row_model(project), "validation"), (batch_model(project), "validation")]
    _, top = models_json_schema(models, ref_template=REF)  # type: ignore[arg-type]
    schemas = {
        **top["$defs"],
        "ValidationError": validation_error_definition,
        "HTTPValidationError": validation_error_response_definition,
    }
    return {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES}


def add_routes(app: FastAPI, project: str, *, keys: list[str], rollout: RolloutFollower) -> None:
    """The prediction routes for ``project``'s generated schema; ``keys``: the predict keys (none: open);
    ``rollout``: the worker's rollout follower (its ``view`` is read once per request).

    Added to the app itself (a route of an included router is matched through FastAPI's inclusion
    layer on every request) and moved to the front of its routes: a request is matched against each
    route in turn, and these are the service's hot path (the docs' routes come first otherwise)."""
    Row, Batch = row_model(project), batch_model(project)
    invalid = {
        "description": "Validation Error",
        "content": {"application/json": {"schema": {"$ref": REF.format(model="HTTPValidationError")}}},
    }
    errors = problems(BAD_REQUEST | NO_MODEL) | (PREDICT_ERRORS if keys else {}) | {422: invalid}

    async def predict(request: Request) -> Response:
        data = (await _read(request, Row, keys)).model_dump()
        state = request.app.state
        log = state.prediction_log
        log.admit()  # lossless setting, spool full: a 503, never an unlogged answer
        model = current_model(state.manager)  # fixed for this request, whatever a swap does meanwhile
        view = rollout.view  # likewise; None (no rollout): nothing else to do
        ids = [request.scope["state"]["request_id"]]
        if view is None:
            started = time.perf_counter()
            classes, proba = await _predict(model, [data], request.scope["state"])
            return _JSONBytes(
                _results(model, log, [data], classes, proba, ids, started, request.scope["state"])[0],
                model.version,
            )
        model, classes, proba, started = await _score_rollout(rollout, view, request, model, [data], ids)
        return _JSONBytes(
            _results(model, log, [data], classes, proba, ids, started, request.scope["state"])[0],
            model.version,
            view.tag,
        )

    async def predict_batch(request: Request) -> Response:
        batch = await _read(request, Batch, keys)
        rows = [r.model_dump() for r in batch.rows]  # type: ignore[attr-defined]
        state = request.app.state
        model = current_model(state.manager)
        limit = state.settings.max_batch_rows
        if len(rows) > limit:
            raise HTTPException(
                status.HTTP_413_CONTENT_TOO_LARGE,
                {"field": "rows", "msg": f"{len(rows)} rows exceed the maximum of {limit}"},
            )
        state.prediction_log.admit()
        base = request.scope["state"]["request_id"]
        ids = [f"{base}-{i}" for i in range(len(rows))]
        view = rollout.view
        tag = None
        if view is None:
            started = time.perf_counter()
            classes, proba = await _predict(model, rows, request.scope["state"])
        else:  # the whole batch goes to one version, by the request's key
            model, classes, proba, started = await _score_rollout(rollout, view, request, model, rows, ids)
            tag = view.tag
        predictions = _results(
            model, state.prediction_log, rows, classes, proba, ids, started, request.scope["state"]
        )
        return _JSONBytes({"predictions": predictions, "model_version": model.version}, model.version, tag)

    common: dict[str, Any] = {"methods": ["POST"], "tags": ["predict"], "route_class_override": RequestRoute}
    app.router.add_api_route(
        "/predict",
        predict,
        response_model=Prediction,
        summary="Predict one row",
        responses=errors,
        openapi_extra=_documented(Row, keys),
        **common,
    )
    app.router.add_api_route(
        "/predict/batch",
        predict_batch,
        response_model=BatchPrediction,
        summary="Predict a list of rows",
        responses=errors | problems(TOO_MANY),
        openapi_extra=_documented(Batch, keys),
        **common,
    )
    routes = app.router.routes
    routes.sort(key=lambda route: not isinstance(route, RequestRoute))  # stable: others keep their order
