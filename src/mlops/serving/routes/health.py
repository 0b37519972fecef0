"""Liveness and readiness; readiness also says where the model came from and whether the registry
has vouched for it (a service started from its local cache serves before its first poll), and this
worker's view of the active rollout."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status
from fastapi.responses import JSONResponse

from mlops.serving.deps import ManagerDep

router = APIRouter(tags=["health"])


@router.get("/health", summary="Liveness: the process answers")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/ready",
    summary="Readiness: 503 until a model is loaded; says where it came from and if the registry answers",
    responses={503: {"description": "No model loaded yet"}},
)
async def ready(request: Request, manager: ManagerDep) -> JSONResponse:
    state: dict[str, Any] = manager.state()
    state["status"] = "ready" if state["model_loaded"] else "loading"
    state["detail"] = _detail(state)
    state["rollout"] = request.app.state.rollout.status()  # this worker's view: candidate loaded or why not
    code = status.HTTP_200_OK if state["model_loaded"] else status.HTTP_503_SERVICE_UNAVAILABLE
    return JSONResponse(state, status_code=code)


def _detail(state: dict[str, Any]) -> str:
    """One sentence for a human reading the probe: what serves, from where, vouched for or not."""
    if state["last_poll"] is None:
        registry = "the registry has not been polled yet"
    else:
        registry = "the registry answers" if state["registry_reachable"] else "the registry is unreachable"
    if not state["model_loaded"]:
        return f"no model loaded yet; {registry}"
    version = state["model_version"]
    if state["source"] == "cache" and not state["registry_confirmed"]:
        return (
            f"serving version {version} from the local cache, not yet confirmed by the registry; {registry}"
        )
    where = "the local cache, confirmed by the registry" if state["source"] == "cache" else "the registry"
    return f"serving version {version} from {where}; {registry}"
