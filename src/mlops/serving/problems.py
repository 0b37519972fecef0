"""Error responses: 422 naming each offending field, never a 500; every other error a ``Problem``.

FastAPI's default handler echoes the input back; a NaN or Infinity in the request (Python's JSON
parser accepts them) would then make the error response itself unserialisable. Here such values
are echoed as text. ``problems`` documents the error statuses a route can answer with, so that
clients (and the schemathesis suite) can rely on the OpenAPI spec.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel

NOT_JSON = {400: "The body is not JSON text (malformed, or not UTF-8)"}
NO_MODEL = {503: "No model loaded yet"}


class Problem(BaseModel):
    """The body of every error but 422: what is wrong, in words (a 413 also names the field)."""

    detail: str | dict[str, str]


def problems(descriptions: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route or router: each error status with its meaning and a ``Problem`` body."""
    return {code: {"model": Problem, "description": text} for code, text in descriptions.items()}


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return JSONResponse({"detail": [_printable(e) for e in errors]}, status_code=422)


def _printable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _printable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_printable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
