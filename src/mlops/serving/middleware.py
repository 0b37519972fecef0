"""A pure-ASGI middleware: request id on every response, request count and latency by route, and the
keyed hash of the request's subject (``X-Subject-Key``: erasure by subject, docs/health-data.md)."""

from __future__ import annotations

import json
import random
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mlops.errors import UsageError
from mlops.serving import instruments
from mlops.stores.retention import SUBJECT_HEADER, hash_subject, subject_secret

_SUBJECT = SUBJECT_HEADER.lower().encode()


def new_request_id() -> str:
    """128 random bits as 32 hex digits, like ``uuid4().hex`` but without a getrandom syscall per
    request (~20 us here). The generator is seeded from the OS and reseeded in forked workers; ids are
    keys, not secrets (the routes that take one back need the admin key)."""
    return f"{random.getrandbits(128):032x}"


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


class RequestMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._secret: bytes | None = None  # the subject-hash key, read on the first request with one

    def _subject_hash(self, scope: Scope, raw: bytes) -> str:
        """The keyed hash of the subject key (never stored itself); UsageError when it is unusable."""
        try:
            key = raw.decode()
        except UnicodeDecodeError:
            raise UsageError(f"{SUBJECT_HEADER} is not UTF-8 text") from None
        if self._secret is None:
            settings: Any = getattr(getattr(scope.get("app"), "state", None), "settings", None)
            if settings is None:
                from mlops.settings import get_settings

                settings = get_settings()
            self._secret = subject_secret(settings)
        return hash_subject(self._secret, key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Always our own id: it keys the prediction log, so a client must not be able to collide with it.
        request_id = new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        subject = _header(scope, _SUBJECT)
        if subject is not None:
            try:
                state["subject_hash"] = self._subject_hash(scope, subject)
            except UsageError as exc:  # a 400 naming the header, before any route reads the body
                await _refuse(send, request_id, exc.message)
                return
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            method = scope.get("method", "GET")
            instruments.request(route, method, str(status), time.perf_counter() - start)


async def _refuse(send: Send, request_id: str, message: str) -> None:
    body = json.dumps({"detail": {"field": SUBJECT_HEADER, "msg": message}}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    await send({"type": "http.response.start", "status": 400, "headers": headers})
    await send({"type": "http.response.body", "body": body})
