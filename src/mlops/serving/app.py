"""The inference service: ``create_app()`` wires settings, the model manager, the prediction log
and retrain jobs into one FastAPI app. Run it with ``mlops serve`` (uvicorn, app factory)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.responses import Response

from mlops.serving import metrics
from mlops.serving.jobs import RetrainJobs
from mlops.serving.middleware import RequestMiddleware
from mlops.serving.model_manager import ModelManager
from mlops.serving.prediction_log import PredictionLog
from mlops.serving.routes import admin, health, predict
from mlops.settings import Settings, apply_environment, get_settings


def create_app(settings: Settings | None = None, *, jobs: RetrainJobs | None = None) -> FastAPI:
    settings = apply_environment(settings or get_settings())
    project = settings.project
    manager = ModelManager(settings, project, settings.serving_alias)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log = PredictionLog(
            settings.prediction_log_db_url,
            max_queue=settings.prediction_log_queue_size,
            flush_s=settings.prediction_log_flush_s,
        )
        app.state.prediction_log = log
        app.state.jobs = jobs or RetrainJobs(project, on_done=manager.check)
        metrics.MODEL_LOADED.set(0)
        log.start()
        await manager.check()  # load once before serving; later versions arrive through the poll
        manager.start()
        yield
        await manager.stop()
        await app.state.jobs.stop()
        await log.stop()  # drains the queue: graceful shutdown loses no logged prediction

    app = FastAPI(
        title=f"mlops inference: {project}",
        description="Predictions from the MLflow registry's model alias, hot-swapped, observable.",
        version="1",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.manager = manager
    app.add_middleware(RequestMiddleware)
    app.include_router(predict.build_router(project))
    app.include_router(health.router)
    app.include_router(admin.router)

    @app.get("/metrics", tags=["health"], summary="Prometheus exposition")
    async def prometheus() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    return app
