"""The inference service: ``create_app()`` wires settings, the model manager, the prediction log
and retrain jobs into one FastAPI app. Run it with ``mlops serve`` (uvicorn, app factory)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from mlops.configure import configure_libraries
from mlops.serving.jobs import RetrainJobs
from mlops.serving.middleware import RequestMiddleware
from mlops.serving.model_manager import ModelManager
from mlops.serving.prediction_writer import PredictionWriter as PredictionLog
from mlops.serving.problems import validation_error
from mlops.serving.routes import feedback, health, model, predict, prometheus, retrain
from mlops.serving.schemas import row_model
from mlops.settings import Settings, get_settings

ROUTERS = (health.router, model.router, retrain.router, feedback.router, prometheus.router)


def create_app(settings: Settings | None = None, *, jobs: RetrainJobs | None = None) -> FastAPI:
    settings = configure_libraries(settings or get_settings())
    manager = ModelManager(settings, settings.project, settings.serving_alias)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.prediction_log = log = PredictionLog.from_settings(settings)
        app.state.jobs = jobs or RetrainJobs(
            settings.project, on_done=manager.check, state_dir=settings.state_dir
        )
        log.start()
        await manager.start()  # loads the alias target once, then polls it in the background
        yield
        # uvicorn has finished the in-flight requests: every prediction is in the queue. Drain it
        # first, so that nothing else's shutdown eats into the drain's time.
        await log.stop()
        await manager.stop()
        await app.state.jobs.stop()

    app = FastAPI(
        title=f"mlops inference: {settings.project}", version="1", lifespan=lifespan, description=__doc__
    )
    app.state.settings, app.state.manager = settings, manager
    app.add_exception_handler(RequestValidationError, validation_error)
    predict_router = predict.build_router(settings.project, predict_key=settings.predict_api_key is not None)
    for router in (predict_router, *ROUTERS):
        app.include_router(router)
    (predict_route,) = (r for r in predict_router.routes if getattr(r, "path", None) == "/predict")
    row = row_model(settings.project)
    app.add_middleware(
        predict.LeanPredict, route=predict_route, row=row, manager=manager, settings=settings, state=app.state
    )
    app.add_middleware(RequestMiddleware)  # added last, so outermost: ids and metrics for every request
    return app
