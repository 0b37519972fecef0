"""Prometheus exposition, answered directly (no redirect)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from mlops.serving import instruments

router = APIRouter(tags=["health"])


@router.get("/metrics", summary="Prometheus exposition", response_class=Response)
async def prometheus() -> Response:
    body, content_type = instruments.exposition()
    return Response(body, media_type=content_type)
