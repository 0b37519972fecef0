"""Retraining handed to a runner, across two service processes sharing one control database (a SQLite
file, and the machine's PostgreSQL): 10 concurrent ``POST /retrain`` spread over both make exactly one
job; both answer ``GET /retrain/{id}`` identically; the runner SIGKILLed mid-job leaves a job that is
failed after the lease with its project released, and the next request starts a new job, which the
real iris training pipeline then completes.

PostgreSQL: 127.0.0.1:5432, user postgres, trust auth (a fresh database per test); missing, it skips
locally and FAILS under ``CI=true``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlops.stores.jobs import JobStore
from tests.integration.processes import ADMIN_KEY, fresh_settings, start_service
from tests.support.control_db import control_databases

ADMIN = {"X-API-Key": ADMIN_KEY}
LEASE_S = 4.0
RUNNER = {"MLOPS_RUNNER": "local", "MLOPS_RUNNER_HEARTBEAT_S": "0.5", "MLOPS_RUNNER_LEASE_S": str(LEASE_S)}


@pytest.fixture(params=["sqlite", "postgresql"])
def control_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with control_databases(request.param, tmp_path / "control") as make:
        yield make()


def wait_for(check: Callable[[], Any], what: str, timeout: float) -> Any:
    """``check()``'s first truthy answer, polled; fails the test after ``timeout`` (a bound, not a
    measurement: nothing here asserts how fast)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = check()
        if answer:
            return answer
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)  # the runner leads its own session: it and its training child


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):  # a zombie is dead: it waits only for its parent's wait()
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    return False


def test_two_services_one_job_a_killed_runner_is_failed_and_the_next_job_runs(
    tmp_path: Path, control_url: str
) -> None:
    settings = fresh_settings(tmp_path)  # one state folder: MLflow, ZenML and (SQLite) the jobs
    env = {**RUNNER, "MLOPS_AUDIT_DB_URL": control_url}
    store = JobStore(control_url)
    services = []
    try:
        for i in range(2):
            log_dir = tmp_path / f"service-{i}"
            log_dir.mkdir()
            services.append(start_service(settings.home, log_dir, ready=(200, 503), **env))
        bases = [base for _, base in services]

        def job(base: str, job_id: str) -> dict[str, Any]:
            return httpx.get(f"{base}/retrain/{job_id}", headers=ADMIN, timeout=30).json()

        # 10 concurrent requests, alternating between the two services: one job
        with ThreadPoolExecutor(10) as pool:
            responses = list(
                pool.map(
                    lambda i: httpx.post(f"{bases[i % 2]}/retrain", headers=ADMIN, timeout=30), range(10)
                )
            )
        assert {r.status_code for r in responses} == {202}, [r.text for r in responses]
        job_ids = {r.json()["job_id"] for r in responses}
        assert len(job_ids) == 1, job_ids
        assert sum(r.headers["x-job-created"] == "true" for r in responses) == 1
        first = job_ids.pop()
        assert {r.headers["location"] for r in responses} == {f"/retrain/{first}"}

        # the local runner claims it and heartbeats while its training child runs; then SIGKILL
        running = wait_for(
            lambda: (j := store.get(first)) and j.pid and j.heartbeat_at > j.started_at and j,
            "the runner's claim and first heartbeat",
            timeout=60,
        )
        assert running.state == "running" and running.runner.endswith(f":{running.pid}")
        kill_group(running.pid)
        wait_for(lambda: not alive(running.pid), "the runner to die", timeout=10)

        failed = wait_for(
            lambda: (j := job(bases[1], first))["state"] == "failed" and j,
            "the dead runner's job to be failed",
            timeout=LEASE_S * 10,
        )
        assert "no heartbeat for more than 4 s" in failed["error"], failed
        assert job(bases[0], first) == job(bases[1], first) == failed
        assert store.active("iris") is None  # the lock is released

        # the next request starts a new job, which the real iris pipeline completes
        again = httpx.post(f"{bases[0]}/retrain", headers=ADMIN, timeout=30)
        assert again.status_code == 202 and again.headers["x-job-created"] == "true"
        second = again.json()["job_id"]
        assert second != first
        other = httpx.post(f"{bases[1]}/retrain", headers=ADMIN, timeout=30)
        assert other.json()["job_id"] == second and other.headers["x-job-created"] == "false"
        done = wait_for(
            lambda: (j := job(bases[1], second))["state"] in ("succeeded", "failed") and j,
            "the second job to finish",
            timeout=400,
        )
        assert done["state"] == "succeeded", done
        assert done["model_version"] == "1" and done["promotion"] is not None, done
        assert job(bases[0], second) == job(bases[1], second) == done
    finally:
        for proc, _ in services:
            proc.stop()
        active = store.active("iris")  # a runner still training after a failure: ended here
        if active is not None and active.pid:
            kill_group(active.pid)
        store.dispose()
