"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from fastapi.responses import JSONResponse

from mlops.serving.deps import ManagerDep

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness: the process answers")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="Readiness: 503 until a model is loaded; reports registry reachability",
    responses={503: {"description": "No model loaded yet"}},
)
async def ready(manager: ManagerDep) -> JSONResponse:
    state: dict[str, Any] = manager.state()
    state["status"] = "ready" if state["model_loaded"] else "loading"
    code = status.HTTP_200_OK if state["model_loaded"] else status.HTTP_503_SERVICE_UNAVAILABLE
    return JSONResponse(state, status_code=code)
