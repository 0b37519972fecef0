"""GET /rollout: the active rollout and its online evidence per version (``mlops rollout status``).

The same document as the command (``governance.rollout.status``), computed in a thread from the
stores only: the record (control database) and the prediction log. A store that cannot be reached
is a 503 (documented), never a 500; no rollout at all is a 200 with ``"active": false``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, HTTPException, status

from mlops.serving.deps import SettingsDep
from mlops.serving.problems import problems

logger = logging.getLogger(__name__)

router = APIRouter(tags=["rollout"])


@router.get(
    "/rollout",
    summary="The active rollout (shadow or canary) and its online evidence per version",
    responses=problems({503: "The rollout record or the prediction log is unreachable"}),
)
async def rollout_status(settings: SettingsDep) -> dict[str, Any]:
    from mlops.governance.rollout import status as read_status

    try:
        return await asyncio.to_thread(read_status, settings, settings.project)
    except Exception as exc:  # a store outage (or an outdated schema): say so, do not 500
        logger.warning("GET /rollout: %s", settings.redact(str(exc)).splitlines()[0])
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "rollout stores unavailable") from exc
