"""The model being served, and a forced registry check."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from mlops.serving.deps import ManagerDep, ModelDep
from mlops.serving.problems import NO_MODEL, problems
from mlops.serving.schemas import ModelInfo
from mlops.serving.security import ADMIN_ERRORS, AdminKey

router = APIRouter(tags=["model"])


@router.get(
    "/model/info", response_model=ModelInfo, summary="The model being served", responses=problems(NO_MODEL)
)
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


@router.post(
    "/reload", dependencies=[AdminKey], responses=ADMIN_ERRORS, summary="Check the registry now (admin key)"
)
async def reload(manager: ManagerDep) -> dict[str, Any]:
    return await manager.check()
