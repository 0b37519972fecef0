"""Security: every mutating endpoint refuses a missing and a wrong key, the predict key opens no admin
route, admin routes are closed when no admin key is configured, and no secret ever leaks.

Endpoints come from the app's route table, so a future endpoint is covered without editing this file.
The leak test runs real ``mlops serve`` processes configured with recognisable secrets and failing
dependencies, provokes errors, and searches everything they say for those secrets.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from pydantic import SecretStr

from mlops.serving.app import create_app
from mlops.serving.security import require_admin
from mlops.settings import Settings
from tests.integration.processes import EXAMPLE, free_port, start_service

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
ADMIN_KEY, PREDICT_KEY = "admin-key-for-security-tests", "predict-key-for-security-tests"
WRONG = {"X-API-Key": "not-the-key"}


def _needs(dependant: Dependant, call: Callable[..., Any]) -> bool:
    return any(d.call is call or _needs(d, call) for d in dependant.dependencies)


def endpoints(app: FastAPI, *, methods: set[str] | None = None, admin: bool = False) -> list[tuple[str, str]]:
    """(method, path) of every route of the app (included routers flattened), path parameters
    filled in; with ``admin``, only the routes that depend on the admin key."""
    found = []
    for route in iter_route_contexts(app.routes):
        if admin and not (
            isinstance(route.original_route, APIRoute) and _needs(route.dependant, require_admin)
        ):
            continue
        path = re.sub(r"\{[^}]+\}", "x", route.path or "")
        found += [(m, path) for m in sorted(route.methods or ()) if methods is None or m in methods]
    return found


@pytest.fixture
def keyed(settings) -> Iterator[tuple[FastAPI, TestClient]]:
    """Both keys configured. No model is needed: the key is checked before anything else."""
    keys = {"admin_api_key": SecretStr(ADMIN_KEY), "predict_api_key": SecretStr(PREDICT_KEY)}
    app = create_app(settings.model_copy(update=keys))
    with TestClient(app) as client:
        yield app, client


def test_every_mutating_endpoint_refuses_missing_and_wrong_keys(keyed, figures) -> None:
    app, client = keyed
    mutating = endpoints(app, methods=MUTATING)
    assert {("POST", "/predict"), ("POST", "/retrain"), ("POST", "/feedback")} <= set(mutating)
    refused = []
    for method, path in mutating:
        missing, wrong = client.request(method, path), client.request(method, path, headers=WRONG)
        assert (missing.status_code, wrong.status_code) == (401, 403), (method, path, missing.text)
        assert "X-API-Key" in missing.json()["detail"] and "wrong API key" in wrong.json()["detail"]
        refused.append((method, path))
    admin = endpoints(app, admin=True)
    for method, path in admin:
        r = client.request(method, path, headers={"X-API-Key": PREDICT_KEY})
        assert r.status_code == 403, f"the predict key opened {method} {path}"
    figures(mutating_endpoints=len(refused), admin_endpoints=len(admin))


def test_admin_routes_refuse_when_no_admin_key_is_configured(settings) -> None:
    app = create_app(settings.model_copy(update={"predict_api_key": SecretStr(PREDICT_KEY)}))
    with TestClient(app) as client:
        for method, path in endpoints(app, admin=True):
            for headers in ({}, WRONG, {"X-API-Key": ""}, {"X-API-Key": PREDICT_KEY}):
                r = client.request(method, path, headers=headers)
                assert r.status_code == 403, (method, path, r.text)
                assert "no admin key configured" in r.json()["detail"]
                assert "MLOPS_ADMIN_API_KEY" in r.json()["detail"]


# ----- secrets never leak -----

SECRETS = {
    "MLOPS_ADMIN_API_KEY": "adm1n-SECRET-7f3a9c",
    "MLOPS_PREDICT_API_KEY": "pred1ct-SECRET-91c2e0",
    "MLOPS_AUDIT_HMAC_KEY": "aud1t-hmac-SECRET-5e2f7a",
    "MLOPS_PREDICTION_LOG_URL": "postgresql://mlops:L0g-pa55-SECRET-c4d8@127.0.0.1:{port}/predictions",
    "MLOPS_AUDIT_DB_URL": "postgresql://audit:Aud1t-pa55-SECRET-0b7e@127.0.0.1:{port}/audit",
    "MLOPS_TRACKING_URI": "http://mlflow:Tr4ck-pa55-SECRET-e5b1@127.0.0.1:{port}",
}
NEEDLE = "SECRET-"  # every secret above carries it, so a partial leak is found too


def _secret_env(closed_port: int, *, registry: bool) -> dict[str, str]:
    """The secrets as the service's environment; without ``registry`` the tracking URI stays the
    working local one (so that predictions run) and only the databases are unreachable."""
    env = {k: v.format(port=closed_port) for k, v in SECRETS.items()}
    if not registry:
        del env["MLOPS_TRACKING_URI"], env["MLOPS_AUDIT_DB_URL"]
    else:
        env["MLOPS_MODEL_CACHE"] = "false"  # the registry-down run expects no model: not a cached one
    return {**env, "MLOPS_ENVIRONMENT": "production", "MLOPS_PREDICTION_LOG_FLUSH_S": "0.1"}


def _provoke(base: str) -> list[str]:
    """Requests that make the service answer, fail and log: every body it returns."""
    admin, predict = (
        {"X-API-Key": SECRETS["MLOPS_ADMIN_API_KEY"]},
        {"X-API-Key": SECRETS["MLOPS_PREDICT_API_KEY"]},
    )
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("POST", "/predict", {"json": EXAMPLE, "headers": predict}),
        ("POST", "/predict/batch", {"json": {"rows": [EXAMPLE] * 3}, "headers": predict}),
        ("POST", "/predict", {"json": EXAMPLE, "headers": WRONG}),
        ("POST", "/predict", {"json": EXAMPLE, "headers": admin}),  # the admin key is no predict key
        ("POST", "/predict", {"json": {"sepal_length": "x"}, "headers": predict}),
        ("POST", "/predict", {"content": b"\xff{", "headers": predict}),
        ("POST", "/feedback", {"json": {"request_id": "r", "true_label": 0}, "headers": admin}),
        ("POST", "/feedback", {"json": {"request_id": "r", "true_label": 0}, "headers": predict}),
        ("POST", "/reload", {"headers": admin}),
        ("POST", "/reload", {"headers": WRONG}),
        ("GET", "/retrain/nope", {"headers": admin}),
        ("GET", "/model/info", {}),
        ("GET", "/ready", {}),
        ("GET", "/health", {}),
        ("GET", "/openapi.json", {}),
    ]
    bodies = []
    with httpx.Client(base_url=base, timeout=30) as client:
        for method, path, kwargs in calls:
            r = client.request(method, path, **kwargs)
            assert r.status_code < 500 or r.status_code == 503, (path, r.status_code, r.text)
            bodies.append(f"{method} {path} -> {r.status_code} {r.headers} {r.text}")
        time.sleep(1.0)  # the log writer fails, retries and logs
        bodies.append(client.get("/metrics").text)
    return bodies


def _leaks(where: str, text: str) -> list[str]:
    """Each occurrence of a secret in ``text``, with its context."""
    return [
        f"{where}: ...{text[max(0, m.start() - 80) : m.end() + 40]}..." for m in re.finditer(NEEDLE, text)
    ]


def test_secrets_never_leak(registered_iris, settings, tmp_path: Path, monkeypatch, figures) -> None:
    closed = free_port()  # nothing listens there: every database and the remote registry are down
    leaks: list[str] = []
    texts, logged = 0, ""
    for name, registry, ready in (("serving", False, 200), ("registry-down", True, 503)):
        env = _secret_env(closed, registry=registry)
        proc, base = start_service(settings.state_dir, tmp_path, ready=(ready,), **env)
        try:
            bodies = _provoke(base)
        finally:
            proc.stop()  # graceful: the log queue it could not write is reported at shutdown
        log = proc.log.read_text(errors="replace")
        logged += log
        for i, body in enumerate(bodies):
            leaks += _leaks(f"{name} response {i}", body)
        leaks += _leaks(f"{name} log", log)
        texts += len(bodies) + 1
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        for shown in (repr(Settings()), str(Settings())):
            leaks += _leaks(f"{name} settings", shown)
            texts += 1
    figures(secrets=len(SECRETS), texts_searched=texts, leaks=len(leaks))
    assert "prediction log: " in logged and "not shipped, will retry" in logged, (
        "the failing database was logged"
    )
    assert not leaks, "\n".join(leaks)
