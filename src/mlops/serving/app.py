"""The inference service: ``create_app()`` wires settings, the model manager, the rollout follower
and guard, the prediction log and retrain jobs into one FastAPI app. Run it with ``mlops serve``
(uvicorn, app factory)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from mlops import tracing
from mlops.configure import configure_libraries
from mlops.serving.guard import RolloutGuard
from mlops.serving.jobs import RetrainJobs
from mlops.serving.middleware import RequestMiddleware
from mlops.serving.model_manager import ModelManager
from mlops.serving.prediction_writer import PredictionWriter
from mlops.serving.problems import validation_error
from mlops.serving.rollout import RolloutFollower
from mlops.serving.routes import feedback, health, model, predict, prometheus, retrain, rollout
from mlops.settings import Settings, get_settings

UNTRACED = "/health$,/ready$,/metrics$"  # regexes searched in the URL (the instrumentation's rule)
ROUTERS = (health.router, model.router, retrain.router, rollout.router, prometheus.router)


def create_app(settings: Settings | None = None, *, jobs: RetrainJobs | None = None) -> FastAPI:
    settings = configure_libraries(settings or get_settings())
    traced = tracing.configure(settings)  # OTEL_TRACES_EXPORTER; off by default
    manager = ModelManager(settings, settings.project, settings.serving_alias)
    follower = RolloutFollower(settings, settings.project, manager)
    guard = RolloutGuard(settings, settings.project)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.prediction_log = log = PredictionWriter.from_settings(settings)
        app.state.jobs = jobs or RetrainJobs(settings.project, on_done=manager.check, settings=settings)
        log.start()
        await manager.start()  # loads the alias target once, then polls it in the background
        follower.start(log)  # follows the active rollout (candidate, routing, shadow scoring)
        guard.start()  # one leader among the workers ends a canary that breaches its budgets
        yield
        await guard.stop()
        await follower.stop()  # before the drain: its last shadow records reach the log's queue
        # uvicorn has finished the in-flight requests: every prediction is in the queue. Drain it
        # first, so that nothing else's shutdown eats into the drain's time.
        await log.stop()
        await manager.stop()
        await app.state.jobs.stop()
        if traced:
            await asyncio.to_thread(tracing.flush)  # the batch processor's last spans

    app = FastAPI(
        title=f"mlops inference: {settings.project}", version="1", lifespan=lifespan, description=__doc__
    )
    app.state.settings, app.state.manager = settings, manager
    app.state.rollout, app.state.guard = follower, guard
    app.add_exception_handler(RequestValidationError, validation_error)
    keys = settings.api_keys("predict_api_key")  # parsed once: settings are fixed per process
    predict.add_routes(app, settings.project, keys=keys, rollout=follower)
    app.include_router(feedback.router_for(settings.project))  # its labels: the use case's classes
    for router in ROUTERS:
        app.include_router(router)
    app.openapi = _openapi(app, settings.project)  # type: ignore[method-assign]
    app.add_middleware(RequestMiddleware)  # ids and metrics for every request
    if traced:
        _instrument(app)
    return app


def _instrument(app: FastAPI) -> None:
    """A server span for every request (OpenTelemetry's FastAPI instrumentation, outermost, so the
    request id middleware and the routes run inside it); only when tracing is on: off, the app is
    not touched. Its per-message ``receive``/``send`` spans are left out (two spans per request that
    say nothing a server span does not), and so are its HTTP metrics (Prometheus has them).
    ``OTEL_PYTHON_FASTAPI_EXCLUDED_URLS`` names paths not to trace (default: the probes and
    ``/metrics``, scraped every few seconds)."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.metrics import NoOpMeterProvider

    excluded = os.environ.get("OTEL_PYTHON_FASTAPI_EXCLUDED_URLS", UNTRACED)
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=tracing.provider,
        meter_provider=NoOpMeterProvider(),
        excluded_urls=excluded,
        exclude_spans=["receive", "send"],
    )


def _openapi(app: FastAPI, project: str) -> Callable[[], dict[str, Any]]:
    """FastAPI's spec plus the schemas the prediction routes refer to (they take no body parameter
    for FastAPI to collect them from: routes/predict.py)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            for section, entries in predict.openapi_components(project).items():
                schema.setdefault("components", {}).setdefault(section, {}).update(entries)
        return app.openapi_schema or {}

    return openapi
