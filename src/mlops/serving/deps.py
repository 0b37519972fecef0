"""Dependencies of the routes, in one place. All ``async def``: FastAPI runs a plain ``def``
dependency in a worker thread, a hop per dependency per request on the hot path."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from mlops.runtime import LoadedModel
from mlops.serving.jobs import RetrainJobs
from mlops.serving.model_manager import ModelManager
from mlops.serving.prediction_writer import PredictionWriter
from mlops.settings import Settings


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_manager(request: Request) -> ModelManager:
    manager: ModelManager = request.app.state.manager
    return manager


def current_model(manager: ModelManager) -> LoadedModel:
    """The model this request runs on, fixed at its start (a swap mid-request does not affect it)."""
    model = manager.current
    if model is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no model loaded yet")
    return model


async def get_model(manager: Annotated[ModelManager, Depends(get_manager)]) -> LoadedModel:
    return current_model(manager)


async def get_log(request: Request) -> PredictionWriter:
    log: PredictionWriter = request.app.state.prediction_log
    return log


async def get_jobs(request: Request) -> RetrainJobs:
    jobs: RetrainJobs = request.app.state.jobs
    return jobs


SettingsDep = Annotated[Settings, Depends(get_settings)]
ManagerDep = Annotated[ModelManager, Depends(get_manager)]
ModelDep = Annotated[LoadedModel, Depends(get_model)]
LogDep = Annotated[PredictionWriter, Depends(get_log)]
JobsDep = Annotated[RetrainJobs, Depends(get_jobs)]
