"""POST /retrain: single-flight jobs running a subprocess (here a short stand-in for the pipeline)."""

from __future__ import annotations

import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi.testclient import TestClient
from tests.unit.serving.conftest import ADMIN, sample

from mlops.serving.app import create_app
from mlops.serving.jobs import RetrainJobs, train_command


def _wait_done(c: TestClient, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while (job := c.get(f"/retrain/{job_id}", headers=ADMIN).json())["state"] == "running":
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    return job


def test_the_real_command_runs_the_training_pipeline() -> None:
    assert train_command("iris") == [
        sys.executable,
        "-m",
        "mlops.cli",
        "train",
        "--project",
        "iris",
        "--json",
    ]


def test_retrain_is_single_flight(service_settings, tmp_path) -> None:
    gate = tmp_path / "release"  # the fake job runs until the test releases it: no timing assumptions
    script = (
        "import json, pathlib, sys, time\n"
        f"gate = pathlib.Path({str(gate)!r})\n"
        "for _ in range(6000):\n"
        "    if gate.exists(): break\n"
        "    time.sleep(0.01)\n"
        "print('training', file=sys.stderr)\n"
        "print(json.dumps({'model': {'version': '7'}, 'promotion': {'outcome': 'kept'}}))\n"
    )
    jobs = RetrainJobs("iris", command=lambda project: [sys.executable, "-c", script])
    started = sample("mlops_retrain_jobs_total", state="started")
    with TestClient(create_app(service_settings, jobs=jobs)) as c:
        with ThreadPoolExecutor(10) as pool:
            responses = list(pool.map(lambda _: c.post("/retrain", headers=ADMIN), range(10)))
        assert {r.status_code for r in responses} == {202}
        job_ids = {r.json()["job_id"] for r in responses}
        assert len(job_ids) == 1
        assert sum(r.headers["x-job-created"] == "true" for r in responses) == 1
        assert sample("mlops_retrain_jobs_total", state="started") == started + 1
        job_id = job_ids.pop()
        assert c.get(f"/retrain/{job_id}", headers=ADMIN).json()["state"] == "running"
        gate.touch()
        job = _wait_done(c, job_id)
        assert job["state"] == "succeeded" and job["model_version"] == "7" and job["finished_at"]
        assert job["promotion"] == {"outcome": "kept"} and "training" in job["log_tail"]
        gate.unlink()
        second = c.post("/retrain", headers=ADMIN)
        assert second.json()["job_id"] != job_id and second.headers["x-job-created"] == "true"
        assert c.get("/retrain/unknown", headers=ADMIN).status_code == 404


def test_failed_retrain_reports_its_log(service_settings) -> None:
    script = "import sys; print('boom: no data', file=sys.stderr); sys.exit(3)"
    jobs = RetrainJobs("iris", command=lambda project: [sys.executable, "-c", script])
    failed = sample("mlops_retrain_jobs_total", state="failed")
    with TestClient(create_app(service_settings, jobs=jobs)) as c:
        job = _wait_done(c, c.post("/retrain", headers=ADMIN).json()["job_id"])
        assert job["state"] == "failed" and "exited with 3" in job["error"]
        assert "boom: no data" in job["log_tail"]
    assert sample("mlops_retrain_jobs_total", state="failed") == failed + 1


def test_a_failed_job_shows_no_secret(service_settings) -> None:
    """The pipeline's errors quote the URL it could not reach: the job shows it masked."""
    url = "postgresql://mlops:db-pw-123@127.0.0.1:1/log"
    script = f"import sys; print('cannot reach {url}', file=sys.stderr); sys.exit(3)"
    jobs = RetrainJobs("iris", command=lambda project: [sys.executable, "-c", script])
    s = service_settings.model_copy(update={"prediction_log_url": url})
    with TestClient(create_app(s, jobs=jobs)) as c:
        job = _wait_done(c, c.post("/retrain", headers=ADMIN).json()["job_id"])
        assert "cannot reach postgresql://mlops:***@127.0.0.1:1/log" in job["log_tail"]
        assert "db-pw-123" not in str(job)


def test_single_flight_holds_across_worker_processes(tmp_path) -> None:
    """Two workers of one service (two RetrainJobs over one state folder): one job, visible to both."""
    gate = tmp_path / "release"
    script = (
        "import json, pathlib, time\n"
        f"gate = pathlib.Path({str(gate)!r})\n"
        "for _ in range(6000):\n"
        "    if gate.exists(): break\n"
        "    time.sleep(0.01)\n"
        "print(json.dumps({'model': {'version': '3'}, 'promotion': {'outcome': 'promoted'}}))\n"
    )

    def command(project: str) -> list[str]:
        return [sys.executable, "-c", script]

    async def scenario() -> None:
        first = RetrainJobs("iris", command=command, state_dir=tmp_path)
        second = RetrainJobs("iris", command=command, state_dir=tmp_path)
        job, created = first.submit()
        other, created_again = second.submit()
        assert created and not created_again and other.job_id == job.job_id
        gate.touch()
        for _ in range(3000):  # bounded
            seen = second.get(job.job_id)
            if seen is not None and seen.state != "running":
                break
            await asyncio.sleep(0.01)
        assert seen is not None and seen.state == "succeeded" and seen.model_version == "3"
        again, created = second.submit()  # the lock is free again: any worker may start the next job
        assert created and again.job_id != job.job_id
        await second.stop()
        assert first.get(again.job_id) is not None

    asyncio.run(scenario())
