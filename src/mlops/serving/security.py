"""API keys: an admin key guards state-changing routes, an optional key guards predictions.

Keys come only from the environment. An admin route with no admin key configured refuses every
call (503): never open by default. 401 without a key, 403 with a wrong one; constant-time compare.
A setting may hold ``NEW,OLD`` while clients move to a new key (docs/operations.md, rotation).
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader

from mlops.serving.problems import problems

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")


def check_key(provided: str | None, expected: list[str], *, required: bool, what: str) -> None:
    if not expected:
        if required:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, f"{what} is disabled: no {what} key configured"
            )
        return
    if not provided:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"missing X-API-Key ({what})")
    # every key is compared, so the time taken does not tell which one nearly matched
    if not sum(secrets.compare_digest(provided.encode(), key.encode()) for key in expected):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"wrong API key ({what})")


async def require_admin(request: Request, key: Annotated[str | None, Depends(api_key_header)]) -> None:
    check_key(key, request.app.state.settings.api_keys("admin_api_key"), required=True, what="admin")


async def require_predict(request: Request, key: Annotated[str | None, Depends(api_key_header)]) -> None:
    check_key(key, request.app.state.settings.api_keys("predict_api_key"), required=False, what="predict")


AdminKey = Depends(require_admin)
PredictKey = Depends(require_predict)
KEY_ERRORS = {401: "Missing X-API-Key", 403: "Wrong API key"}
ADMIN_ERRORS = problems(KEY_ERRORS | {503: "No admin key configured: admin routes are disabled"})
PREDICT_ERRORS = problems(KEY_ERRORS)
