"""The service under real uvicorn in a subprocess: hot swap under load, a registry outage with a
real MLflow server, and `mlops demo --smoke` followed by a real retrain over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlops.lifecycle import train_register_promote
from mlops.registry import Registry
from mlops.settings import Settings, apply_environment
from tests.integration.processes import Proc, free_port

pytestmark = pytest.mark.integration
MLOPS = str(Path(sys.executable).parent / "mlops")
POLL_S = 0.5

EXAMPLE = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
ADMIN_KEY = "integration-admin-key"


def service_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    return {
        **env,
        "MLOPS_HOME": str(home),
        "ZENML_CONFIG_PATH": str(home / "zenml"),
        "MLOPS_ADMIN_API_KEY": ADMIN_KEY,
        **extra,
    }


def start_service(home: Path, log_dir: Path, *, workers: int = 1, **env: str) -> tuple[Proc, str]:
    port = free_port()
    cmd = [sys.executable, "-m", "mlops.cli", "serve", "--project", "iris", "--port", str(port)]
    proc = Proc("service", [*cmd, "--workers", str(workers)], service_env(home, **env), log_dir)
    base = f"http://127.0.0.1:{port}"
    try:
        proc.wait_http(f"{base}/ready", timeout=120)
    except BaseException:
        proc.stop()
        raise
    return proc, base


@dataclass
class Result:
    sent: float
    received: float
    status: int  # 0 = transport error
    version: str | None
    error: str = ""


@dataclass
class LoadGenerator:
    """Threads with keep-alive clients posting /predict until stopped (bounded by max_seconds)."""

    base: str
    threads: int = 4
    max_seconds: float = 120.0
    results: list[Result] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> LoadGenerator:
        for i in range(self.threads):
            t = threading.Thread(target=self._run, name=f"load-{i}", daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(timeout=30)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        with httpx.Client(base_url=self.base, timeout=10) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                sent = time.monotonic()
                try:
                    r = client.post("/predict", json=EXAMPLE)
                    version = r.json().get("model_version") if r.status_code == 200 else None
                    result = Result(sent, time.monotonic(), r.status_code, version, "" if version else r.text)
                except httpx.HTTPError as exc:
                    result = Result(sent, time.monotonic(), 0, None, repr(exc))
                with self._lock:
                    self.results.append(result)

    def snapshot(self) -> list[Result]:
        with self._lock:
            return list(self.results)

    def wait_for(self, predicate: Callable[[list[Result]], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.snapshot()):
                return True
            time.sleep(0.05)
        return False


# ----- hot swap -----


def test_new_version_is_served_within_two_seconds_of_the_poll_without_a_failed_request(tmp_path) -> None:
    settings = apply_environment(Settings(home=tmp_path / "state", actor="pytest"))
    train_register_promote(settings, "iris")  # version 1, production
    registry = Registry(settings, "iris")
    proc, base = start_service(settings.home, tmp_path, workers=2, MLOPS_POLL_INTERVAL_S=str(POLL_S))
    try:
        with LoadGenerator(base, threads=4) as load:
            assert load.wait_for(lambda rs: len(rs) >= 200, timeout=60), "no load reached the service"
            train_register_promote(settings, "iris", seed=11)  # version 2, trained while serving
            current = registry.alias_version("production")
            if current != "2":  # a tie keeps the champion; the test needs the move
                registry.move_alias("production", expected=current, new="2")
            promoted = time.monotonic()
            converged = load.wait_for(
                lambda rs: (
                    sum(r.version == "2" for r in rs if r.sent > promoted) >= 200
                    and all(r.version == "2" for r in rs[-100:])
                ),
                timeout=30,
            )
        results = load.snapshot()
        metrics = httpx.get(f"{base}/metrics").text
    finally:
        proc.stop()
    failed = [r for r in results if r.status != 200]
    assert not failed, f"{len(failed)} failed requests, e.g. {failed[:3]}\n{proc.tail()}"
    assert converged, proc.tail()
    versions = {r.version for r in results}
    assert versions == {"1", "2"} and versions <= {v.version for v in registry.versions()}
    # Both workers switched: no response came from version 1 for a request sent later than
    # one poll interval plus 2 s after the alias moved.
    last_old = max(r.sent for r in results if r.version == "1")
    assert last_old - promoted <= POLL_S + 2.0, f"version 1 still answered {last_old - promoted:.2f} s later"
    assert len(results) > 400
    assert (
        'mlops_model_info{alias="production",name="iris-classifier",runtime="onnx",version="2"} 1.0'
        in metrics
    )
    swaps = {
        sample.labels["result"]: sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "mlops_model_swaps_total"
    }
    assert swaps.get("rejected", 0) == 0 and swaps["success"] == 4  # per worker: first load + the swap


# ----- registry outage -----


def _mlflow_server(root: Path, port: int, env: dict[str, str]) -> Proc:
    mlflow = str(Path(sys.executable).parent / "mlflow")
    cmd = [mlflow, "server", "--backend-store-uri", f"sqlite:///{root}/mlflow.db"]
    cmd += ["--default-artifact-root", (root / "artifacts").as_uri(), "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--workers", "1"]
    proc = Proc(f"mlflow-{port}", cmd, {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, root)
    proc.wait_http(f"http://127.0.0.1:{port}/health", timeout=90)
    return proc


def test_registry_outage_keeps_serving_and_ready_says_so(tmp_path) -> None:
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    env = service_env(tmp_path / "state", MLOPS_TRACKING_URI=uri, MLOPS_POLL_INTERVAL_S="0.3")
    mlflow = _mlflow_server(tmp_path, port, env)
    service = None
    try:
        settings = apply_environment(Settings(home=tmp_path / "state", tracking_uri=uri, actor="pytest"))
        train_register_promote(settings, "iris")
        service, base = start_service(
            settings.home, tmp_path, MLOPS_TRACKING_URI=uri, MLOPS_POLL_INTERVAL_S="0.3"
        )
        assert httpx.get(f"{base}/ready").json()["registry_reachable"] is True

        with LoadGenerator(base, threads=2) as load:
            mlflow.stop()  # the registry is gone
            ready = None
            for _ in range(200):  # bounded: a poll every 0.3 s
                ready = httpx.get(f"{base}/ready")
                if ready.json()["registry_reachable"] is False:
                    break
                load.wait_for(lambda rs: False, timeout=0.1)
            assert ready is not None and ready.status_code == 200, service.tail()
            assert ready.json()["registry_reachable"] is False and ready.json()["model_version"] == "1"
            assert "mlops_registry_reachable 0.0" in httpx.get(f"{base}/metrics").text
            r = httpx.post(f"{base}/predict", json=EXAMPLE)
            assert r.status_code == 200 and r.json()["model_version"] == "1"

            mlflow = _mlflow_server(tmp_path, port, env)  # and back
            assert load.wait_for(
                lambda rs: httpx.get(f"{base}/ready").json()["registry_reachable"] is True, timeout=60
            )
        results = load.snapshot()
        assert results and all(r.status == 200 and r.version == "1" for r in results)
    finally:
        if service is not None:
            service.stop()
        mlflow.stop()


# ----- demo and a real retrain -----


def test_demo_then_retrain_over_http(tmp_path) -> None:
    home = tmp_path / "state"
    env = service_env(home)
    out = subprocess.run(
        [MLOPS, "demo", "--smoke", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert '"model_version": "1"' in out.stdout and "/metrics" in out.stdout and "/docs" in out.stdout

    service, base = start_service(home, tmp_path, workers=2, MLOPS_POLL_INTERVAL_S="1")
    try:
        admin = {"X-API-Key": ADMIN_KEY}
        assert httpx.post(f"{base}/retrain").status_code == 401
        # 10 concurrent requests over fresh connections, so both workers take some: one job.
        with ThreadPoolExecutor(10) as pool:
            responses = list(pool.map(lambda _: httpx.post(f"{base}/retrain", headers=admin), range(10)))
        assert {r.status_code for r in responses} == {202}
        assert len({r.json()["job_id"] for r in responses}) == 1
        assert sum(r.headers["x-job-created"] == "true" for r in responses) == 1
        job_id = responses[0].json()["job_id"]
        deadline = time.monotonic() + 300
        while (job := httpx.get(f"{base}/retrain/{job_id}", headers=admin).json())["state"] == "running":
            assert time.monotonic() < deadline, job
            # the service keeps answering while the pipeline runs next to it
            assert httpx.post(f"{base}/predict", json=EXAMPLE).status_code == 200
            time.sleep(0.5)
        assert job["state"] == "succeeded", json.dumps(job, indent=1)
        assert job["model_version"] == "2"
        assert job["promotion"]["outcome"] in {"promoted", "kept", "rejected"}, job["promotion"]
        expected = "2" if job["promotion"]["outcome"] == "promoted" else "1"
        for _ in range(40):  # both workers converge (one reloads at the job's end, the other polls)
            versions = {
                httpx.post(f"{base}/predict", json=EXAMPLE).json()["model_version"] for _ in range(10)
            }
            if versions == {expected}:
                break
            time.sleep(0.25)
        assert versions == {expected}
    finally:
        service.stop()
