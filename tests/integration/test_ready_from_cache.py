"""Ready from the local cache with the registry down, as real processes: an MLflow server holds the
registry; a service serves version N once and stops; the MLflow server stops (the outage); the
service restarts and serves N from its cache, says so in /ready and its metrics, and the first poll
after the MLflow server returns confirms it. A corrupt cache with the registry down is never served,
and the path to ready from the cache never imports mlflow."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.integration.processes import (
    EXAMPLE,
    free_port,
    fresh_settings,
    metric_samples,
    mlflow_server,
    service_env,
    start_service,
)

pytestmark = pytest.mark.integration


@dataclass
class Outage:
    home: Path  # the state folder of a service that served ``version`` once (its cache holds it)
    version: str
    mlflow_root: Path
    mlflow_port: int  # the registry's port: nothing listens there now
    env: dict[str, str]  # MLOPS_TRACKING_URI for the service


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    from tests.support.training import train_register_promote

    root = tmp_path_factory.mktemp("ready-from-cache")
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    registry = mlflow_server(root / "mlflow", port, service_env(root / "unused"))
    try:
        settings = fresh_settings(root, tracking_uri=uri)
        version = str(train_register_promote(settings, "iris")["model"]["version"])
        env = {"MLOPS_TRACKING_URI": uri, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
        service, base = start_service(settings.state_dir, root, **env)
        try:
            state = httpx.get(f"{base}/ready").json()
            assert state["source"] == "registry" and state["registry_confirmed"], state
        finally:
            service.stop()
    finally:
        registry.stop()  # the outage starts
    yield Outage(settings.state_dir, version, root / "mlflow", port, env)


def gauge(base: str, name: str) -> float:
    return sum(s.value for s in metric_samples(base, name))


def wait_ready_state(base: str, done, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    state: dict = {}
    while time.monotonic() < deadline:
        state = httpx.get(f"{base}/ready").json()
        if done(state):
            return state
        time.sleep(0.2)
    raise AssertionError(f"/ready never got there: {state}")


def test_serves_the_cached_version_while_the_registry_is_down_then_confirms_it(outage, tmp_path) -> None:
    home = tmp_path / "state"
    shutil.copytree(outage.home, home)
    service, base = start_service(home, tmp_path, **outage.env)
    registry = None
    try:
        ready = httpx.get(f"{base}/ready")
        assert ready.status_code == 200
        state = wait_ready_state(base, lambda s: s["last_poll"] is not None)  # the first poll failed
        assert state["model_version"] == outage.version
        assert state["source"] == "cache" and state["registry_confirmed"] is False
        assert state["registry_reachable"] is False
        assert "local cache, not yet confirmed" in state["detail"] and "unreachable" in state["detail"]
        answer = httpx.post(f"{base}/predict", json=EXAMPLE)
        assert answer.status_code == 200 and answer.json()["model_version"] == outage.version
        assert gauge(base, "mlops_model_served_from_cache") == 1
        assert gauge(base, "mlops_registry_reachable") == 0

        registry = mlflow_server(outage.mlflow_root, outage.mlflow_port, service_env(tmp_path / "unused"))
        state = wait_ready_state(base, lambda s: s["registry_confirmed"])
        assert state["model_version"] == outage.version and state["registry_reachable"]
        assert state["source"] == "cache" and "confirmed by the registry" in state["detail"]
        assert gauge(base, "mlops_model_served_from_cache") == 0
        assert gauge(base, "mlops_registry_reachable") == 1
        assert httpx.post(f"{base}/predict", json=EXAMPLE).json()["model_version"] == outage.version
    finally:
        service.stop()
        if registry is not None:
            registry.stop()


def test_a_corrupt_cache_with_the_registry_down_is_never_served(outage, tmp_path) -> None:
    home = tmp_path / "state"
    shutil.copytree(outage.home, home)
    cached = list((home / "model-cache").rglob("*.onnx"))
    assert cached, "the first run cached nothing"
    for path in cached:
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    service, base = start_service(home, tmp_path, ready=(503,), **outage.env)
    try:
        state = httpx.get(f"{base}/ready").json()
        assert state["model_loaded"] is False and state["source"] is None and not state["registry_reachable"]
        assert httpx.post(f"{base}/predict", json=EXAMPLE).status_code == 503
        assert gauge(base, "mlops_model_cache_corrupt_total") == len(cached)
        assert gauge(base, "mlops_model_served_from_cache") == 0
    finally:
        service.stop()
    assert "model cache entry" in service.log.read_text(errors="replace")


IMPORTS_AT_READY = """
import asyncio, json, sys
from mlops.serving.app import create_app
from mlops.settings import Settings

async def main():
    app = create_app(Settings())
    async with app.router.lifespan_context(app):
        # Ready: the lifespan has started; nothing has awaited since, so the first poll (which
        # imports mlflow in its thread) has not begun.
        heavy = sorted(m for m in ("mlflow", "zenml") if m in sys.modules)
        print(json.dumps({"state": app.state.manager.state(), "imported": heavy}))

asyncio.run(main())
"""


def test_ready_from_the_cache_does_not_import_mlflow(outage, tmp_path) -> None:
    home = tmp_path / "state"
    shutil.copytree(outage.home, home)
    out = subprocess.run(
        [sys.executable, "-c", IMPORTS_AT_READY],
        env=service_env(home, **outage.env),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["state"]["model_loaded"] and report["state"]["source"] == "cache"
    assert report["imported"] == [], report
