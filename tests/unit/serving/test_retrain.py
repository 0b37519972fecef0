"""POST /retrain: single-flight jobs running a worker process that writes a structured result (here
mostly short stand-ins for the pipeline; the real worker entry point runs in two tests)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.unit.serving.conftest import ADMIN, sample

from mlops import worker
from mlops.errors import GateFailed, JobResult
from mlops.serving.app import create_app
from mlops.serving.jobs import RetrainJobs, train_command

# A stand-in worker: waits for an optional gate file, logs, then writes a JobResult to argv[1].
FAKE_WORKER = """
import json, pathlib, sys, time
gate = pathlib.Path(sys.argv[2]) if len(sys.argv) > 2 else None
for _ in range(6000):
    if gate is None or gate.exists(): break
    time.sleep(0.01)
print('training', file=sys.stderr)
pathlib.Path(sys.argv[1]).write_text(json.dumps({RESULT}))
"""


def fake_worker(result: dict[str, Any], gate: Path | None = None) -> Any:
    script = FAKE_WORKER.replace("{RESULT}", repr(result))
    return lambda project, out: [sys.executable, "-c", script, str(out), *([str(gate)] if gate else [])]


OK = {"ok": True, "outputs": {"model": {"version": "7"}, "promotion": {"outcome": "kept"}}}


def _wait_done(c: TestClient, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while (job := c.get(f"/retrain/{job_id}", headers=ADMIN).json())["state"] == "running":
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    return job


def test_the_real_worker_runs_and_its_error_travels_as_data(service_settings) -> None:
    """The job starts the real entry point (``python -m mlops.worker train``); the worker fails fast
    on an unknown project and the job shows its error, hint included, read from the result file."""
    jobs = RetrainJobs("no-such-project")
    assert train_command("iris", Path("r.json"))[1:] == [
        "-m",
        "mlops.worker",
        "train",
        "--project",
        "iris",
        "--result",
        "r.json",
    ]
    with TestClient(create_app(service_settings, jobs=jobs)) as c:
        job = _wait_done(c, c.post("/retrain", headers=ADMIN).json()["job_id"])
    assert job["state"] == "failed" and job["model_version"] is None
    assert job["error"].startswith("unknown project 'no-such-project'")
    assert "hint: choose one of: iris, readmission" in job["error"]


def test_the_worker_writes_outputs_or_the_error_as_data(tmp_path, monkeypatch) -> None:
    """In-process: a fake fast job stands in for the pipeline; the result file holds its outputs, or
    the MlopsError's type, reasons and exit code (which is also the worker's exit code)."""
    out = tmp_path / "result.json"
    monkeypatch.setitem(worker.JOBS, "train", lambda project: {"model": {"version": "3"}, "project": project})
    assert worker.main(["train", "--project", "iris", "--result", str(out)]) == 0
    result = JobResult.read(out)
    assert result.ok and result.model_version == "3" and result.outputs["project"] == "iris"

    def refuse(project: str) -> dict[str, Any]:
        raise GateFailed("model gate failed for 'iris'", reasons=["accuracy 0.5 < 0.9"])

    monkeypatch.setitem(worker.JOBS, "train", refuse)
    assert worker.main(["train", "--project", "iris", "--result", str(out)]) == GateFailed.exit_code
    failed = JobResult.read(out)
    assert not failed.ok and failed.error is not None
    assert failed.error["type"] == "GateFailed" and failed.error["reasons"] == ["accuracy 0.5 < 0.9"]
    assert json.loads(out.read_text())["error"]["exit_code"] == 3


def test_retrain_is_single_flight(service_settings, tmp_path) -> None:
    gate = tmp_path / "release"  # the fake job runs until the test releases it: no timing assumptions
    jobs = RetrainJobs("iris", command=fake_worker(OK, gate))
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
    jobs = RetrainJobs("iris", command=lambda project, out: [sys.executable, "-c", script])
    failed = sample("mlops_retrain_jobs_total", state="failed")
    with TestClient(create_app(service_settings, jobs=jobs)) as c:
        job = _wait_done(c, c.post("/retrain", headers=ADMIN).json()["job_id"])
        assert job["state"] == "failed" and "exited with 3 without writing a result" in job["error"]
        assert "boom: no data" in job["log_tail"]
    assert sample("mlops_retrain_jobs_total", state="failed") == failed + 1


@pytest.mark.parametrize("reasons", [[], ["f1_macro 0.41 < 0.80", "fairness gap 0.3 > 0.1"]])
def test_a_refused_retrain_shows_the_error_and_every_reason(service_settings, reasons) -> None:
    error = {"type": "GateFailed", "message": "model gate failed", "hint": "", "reasons": reasons}
    jobs = RetrainJobs("iris", command=fake_worker({"ok": False, "error": error}))
    with TestClient(create_app(service_settings, jobs=jobs)) as c:
        job = _wait_done(c, c.post("/retrain", headers=ADMIN).json()["job_id"])
    assert job["state"] == "failed" and job["model_version"] is None
    assert job["error"].splitlines() == ["model gate failed", *(f"  - {r}" for r in reasons)]


def test_a_failed_job_shows_no_secret(service_settings) -> None:
    """The pipeline's errors quote the URL it could not reach: the job shows it masked."""
    url = "postgresql://mlops:db-pw-123@127.0.0.1:1/log"
    script = f"import sys; print('cannot reach {url}', file=sys.stderr); sys.exit(3)"
    jobs = RetrainJobs("iris", command=lambda project, out: [sys.executable, "-c", script])
    s = service_settings.model_copy(update={"prediction_log_url": url})
    with TestClient(create_app(s, jobs=jobs)) as c:
        job = _wait_done(c, c.post("/retrain", headers=ADMIN).json()["job_id"])
        assert "cannot reach postgresql://mlops:***@127.0.0.1:1/log" in job["log_tail"]
        assert "db-pw-123" not in str(job)


def test_single_flight_holds_across_worker_processes(tmp_path) -> None:
    """Two workers of one service (two RetrainJobs over one state folder): one job, visible to both."""
    gate = tmp_path / "release"
    command = fake_worker({"ok": True, "outputs": {"model": {"version": "3"}}}, gate)

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
