"""API keys: an admin key guards state-changing routes, an optional key guards predictions.

Keys come only from the environment. An admin route with no admin key configured refuses every
call: never open by default. That refusal is a 403 naming the setting to set, not a 503: the
service is up, the route is closed by configuration (monitoring counts a 5xx as an outage, a fuzzer
as a server error). 401 without a key, 403 with a wrong one; constant-time compare.
A setting may hold ``NEW,OLD`` while clients move to a new key (docs/operations.md, rotation).
``check_key`` is the one check: the admin routes reach it through a dependency, the prediction
routes (which read their request themselves, see routes/predict.py) through ``check_request_key``.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import APIKeyHeader

from mlops.serving.problems import problems

KEY_HEADER = "X-API-Key"
api_key_header = APIKeyHeader(name=KEY_HEADER, auto_error=False, description="API key")
# the scheme as FastAPI puts it in the spec, for routes that document the key without a dependency
SECURITY_SCHEMES: dict[str, Any] = {
    api_key_header.scheme_name: api_key_header.model.model_dump(mode="json", by_alias=True, exclude_none=True)
}


def check_key(provided: str | None, expected: list[str], *, required: bool, what: str) -> None:
    if not expected:
        if required:
            hint = f"set MLOPS_{what.upper()}_API_KEY to enable it"
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"{what} routes are disabled: no {what} key configured ({hint})"
            )
        return
    if not provided:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, f"missing X-API-Key ({what})")
    # every key is compared, so the time taken does not tell which one nearly matched
    if not sum(secrets.compare_digest(provided.encode(), key.encode()) for key in expected):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"wrong API key ({what})")


def check_request_key(request: Request, expected: list[str], *, required: bool, what: str) -> None:
    """``check_key`` on the request's X-API-Key header (read only when a key is configured)."""
    if expected or required:
        check_key(request.headers.get(KEY_HEADER), expected, required=required, what=what)


async def require_admin(request: Request, key: Annotated[str | None, Depends(api_key_header)]) -> None:
    check_key(key, request.app.state.settings.api_keys("admin_api_key"), required=True, what="admin")


AdminKey = Depends(require_admin)
KEY_ERRORS = {401: "Missing X-API-Key", 403: "Wrong API key"}
NO_ADMIN_KEY = (
    "Wrong API key, or no admin key configured: admin routes are disabled (set MLOPS_ADMIN_API_KEY)"
)
ADMIN_ERRORS = problems(KEY_ERRORS | {403: NO_ADMIN_KEY})
PREDICT_ERRORS = problems(KEY_ERRORS)
