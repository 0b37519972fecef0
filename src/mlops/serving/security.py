"""API keys: an admin key guards state-changing routes, an optional key guards predictions.

Keys come only from the environment. An admin route with no admin key configured refuses every
call (503): never open by default. 401 without a key, 403 with a wrong one; constant-time compare.
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader
from pydantic import SecretStr

from mlops.serving.errors import problems

api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key")


def _check(provided: str | None, expected: SecretStr | None, *, required: bool, what: str) -> None:
    if expected is None or not expected.get_secret_value():
        if required:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE, f"{what} is disabled: no {what} key configured"
            )
        return
    if not provided:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"missing X-API-Key ({what})")
    if not secrets.compare_digest(provided.encode(), expected.get_secret_value().encode()):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"wrong API key ({what})")


async def require_admin(request: Request, key: Annotated[str | None, Depends(api_key_header)]) -> None:
    _check(key, request.app.state.settings.admin_api_key, required=True, what="admin")


async def require_predict(request: Request, key: Annotated[str | None, Depends(api_key_header)]) -> None:
    _check(key, request.app.state.settings.predict_api_key, required=False, what="predict")


AdminKey = Depends(require_admin)
PredictKey = Depends(require_predict)
KEY_ERRORS = {401: "Missing X-API-Key", 403: "Wrong API key"}
ADMIN_ERRORS = problems(KEY_ERRORS | {503: "No admin key configured: admin routes are disabled"})
PREDICT_ERRORS = problems(KEY_ERRORS)
