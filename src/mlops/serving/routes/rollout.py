"""GET /rollout: the active rollout and its online evidence. Not built yet."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["rollout"])
