"""Liveness, readiness and the model's identity."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse

from mlops.serving.deps import ManagerDep, ModelDep
from mlops.serving.schemas import ModelInfo
from mlops.serving.security import AdminKey

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness: the process answers")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="Readiness: a model is loaded (503 until then); registry reachability")
async def ready(manager: ManagerDep) -> JSONResponse:
    state: dict[str, Any] = manager.state()
    state["status"] = "ready" if state["model_loaded"] else "loading"
    code = status.HTTP_200_OK if state["model_loaded"] else status.HTTP_503_SERVICE_UNAVAILABLE
    return JSONResponse(state, status_code=code)


@router.get("/model/info", response_model=ModelInfo, tags=["model"], summary="The model being served")
async def model_info(model: ModelDep, manager: ManagerDep) -> ModelInfo:
    return ModelInfo(
        name=model.name,
        alias=manager.alias,
        version=model.version,
        mlflow_run_id=model.run_id,
        metrics=model.metrics,
        trained_at=model.created_at,
        runtime=model.runtime,
        threshold=model.threshold,
    )


@router.post("/reload", tags=["model"], dependencies=[AdminKey], summary="Check the registry now")
async def reload(manager: ManagerDep) -> dict[str, Any]:
    return await manager.check()
