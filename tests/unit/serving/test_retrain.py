"""POST /retrain: single-flight jobs in the control database, run by a real runner process
(``python -m mlops.worker run`` started by the service, or ``loop`` for an external runner) whose
training child writes a structured result (here mostly short stand-ins for the pipeline; the real
training entry point runs in two tests)."""

from __future__ import annotations

import asyncio
import json
import subprocess
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
from mlops.serving.jobs import RetrainJobs, runner_environment, train_command

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
    while (job := c.get(f"/retrain/{job_id}", headers=ADMIN).json())["state"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    return job


def test_the_real_worker_runs_and_its_error_travels_as_data(service_settings) -> None:
    """The job starts the real entry point (``python -m mlops.worker train``); the worker fails fast
    on an unknown project and the job shows its error, hint included, read from the result file."""
    jobs = RetrainJobs("no-such-project", settings=service_settings)
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
    jobs = RetrainJobs("iris", command=fake_worker(OK, gate), settings=service_settings)
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
        assert job["state"] == "succeeded" and job["model_version"] == "7" and job["finished_at"], job
        assert job["promotion"] == {"outcome": "kept"} and "training" in job["log_tail"]
        gate.unlink()
        second = c.post("/retrain", headers=ADMIN)
        assert second.json()["job_id"] != job_id and second.headers["x-job-created"] == "true"
        assert c.get("/retrain/unknown", headers=ADMIN).status_code == 404


def test_failed_retrain_reports_its_log(service_settings) -> None:
    script = "import sys; print('boom: no data', file=sys.stderr); sys.exit(3)"
    jobs = RetrainJobs(
        "iris", command=lambda project, out: [sys.executable, "-c", script], settings=service_settings
    )
    failed = sample("mlops_retrain_jobs_total", state="failed")
    with TestClient(create_app(service_settings, jobs=jobs)) as c:
        job = _wait_done(c, c.post("/retrain", headers=ADMIN).json()["job_id"])
        assert job["state"] == "failed" and "exited with 3 without writing a result" in job["error"]
        assert "boom: no data" in job["log_tail"]
    assert sample("mlops_retrain_jobs_total", state="failed") == failed + 1


@pytest.mark.parametrize("reasons", [[], ["f1_macro 0.41 < 0.80", "fairness gap 0.3 > 0.1"]])
def test_a_refused_retrain_shows_the_error_and_every_reason(service_settings, reasons) -> None:
    error = {"type": "GateFailed", "message": "model gate failed", "hint": "", "reasons": reasons}
    jobs = RetrainJobs("iris", command=fake_worker({"ok": False, "error": error}), settings=service_settings)
    with TestClient(create_app(service_settings, jobs=jobs)) as c:
        job = _wait_done(c, c.post("/retrain", headers=ADMIN).json()["job_id"])
    assert job["state"] == "failed" and job["model_version"] is None
    assert job["error"].splitlines() == ["model gate failed", *(f"  - {r}" for r in reasons)]


def test_a_failed_job_shows_no_secret(service_settings) -> None:
    """The pipeline's errors quote the URL it could not reach: the job shows it masked."""
    url = "postgresql://mlops:db-pw-123@127.0.0.1:1/log"
    script = f"import sys; print('cannot reach {url}', file=sys.stderr); sys.exit(3)"
    s = service_settings.model_copy(update={"prediction_log_url": url})
    jobs = RetrainJobs("iris", command=lambda project, out: [sys.executable, "-c", script], settings=s)
    with TestClient(create_app(s, jobs=jobs)) as c:
        job = _wait_done(c, c.post("/retrain", headers=ADMIN).json()["job_id"])
        assert "cannot reach postgresql://mlops:***@127.0.0.1:1/log" in job["log_tail"]
        assert "db-pw-123" not in str(job)


def test_single_flight_holds_across_workers_and_replicas(service_settings, tmp_path) -> None:
    """Two services' jobs over one control database (two workers, or two replicas): one job, read
    the same by both; once it finished, either may start the next one."""
    gate = tmp_path / "release"
    command = fake_worker({"ok": True, "outputs": {"model": {"version": "3"}}}, gate)

    async def scenario() -> None:
        first = RetrainJobs("iris", command=command, settings=service_settings)
        second = RetrainJobs("iris", command=command, settings=service_settings)
        job, created = await first.submit()
        other, created_again = await second.submit()
        assert created and not created_again and other.id == job.id
        assert job.state == "running" and job.runner is None  # the local runner claims it by id
        gate.touch()
        for _ in range(3000):  # bounded
            seen = await second.get(job.id)
            if seen is not None and not seen.active:
                break
            await asyncio.sleep(0.02)
        assert seen is not None and seen.state == "succeeded" and seen.model_version == "3"
        assert seen.runner and seen == await first.get(job.id)
        gate.unlink()
        again, created = await second.submit()  # the project is free: any replica starts the next
        assert created and again.id != job.id
        assert (await first.get(again.id)) is not None
        await first.stop()
        await second.stop()

    asyncio.run(scenario())


def test_an_external_runner_claims_the_queued_job(service_settings) -> None:
    """``runner = "external"``: the service only records the job (queued); ``mlops worker``'s loop
    (here ``python -m mlops.worker loop --once``) claims it, trains and writes the outcome."""
    s = service_settings.model_copy(update={"runner": "external", "runner_heartbeat_s": 0.2})
    jobs = RetrainJobs("iris", settings=s)
    with TestClient(create_app(s, jobs=jobs)) as c:
        job = c.post("/retrain", headers=ADMIN).json()
        assert job["state"] == "queued" and job["runner"] is None
        assert c.post("/retrain", headers=ADMIN).headers["x-job-created"] == "false"
        template = json.dumps(fake_worker(OK)("{project}", Path("{result}")))
        loop = [sys.executable, "-m", "mlops.worker", "loop", "--once", "--train-command", template]
        ran = subprocess.run(loop, env=runner_environment(s), capture_output=True, text=True, timeout=120)
        assert ran.returncode == 0, ran.stderr
        assert f"job {job['job_id']} (iris): succeeded" in ran.stdout
        done = c.get(f"/retrain/{job['job_id']}", headers=ADMIN).json()
    assert done["state"] == "succeeded" and done["model_version"] == "7" and done["runner"]
    assert done["promotion"] == {"outcome": "kept"} and "training" in done["log_tail"]


def test_mlops_worker_runs_the_loop_and_refuses_a_heartbeat_past_the_lease(
    service_settings, tmp_path
) -> None:
    """The CLI hands over to the worker's loop (here with nothing queued: it stops at once, having
    touched its liveness file); a heartbeat no shorter than the lease is a usage error, exit 2."""
    mlops = str(Path(sys.executable).parent / "mlops")
    env = runner_environment(service_settings.model_copy(update={"runner": "external"}))
    alive = tmp_path / "alive"
    ran = subprocess.run(
        [mlops, "worker", "--once", "--alive-file", str(alive)], env=env, capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stderr
    assert alive.exists()
    env["MLOPS_RUNNER_HEARTBEAT_S"], env["MLOPS_RUNNER_LEASE_S"] = "30", "10"
    refused = subprocess.run([mlops, "worker", "--once"], env=env, capture_output=True, text=True)
    assert refused.returncode == 2
    assert "must be shorter than" in refused.stderr and "MLOPS_RUNNER_LEASE_S" in refused.stderr


def test_stop_runners_kills_the_local_runner_and_the_lease_fails_its_job(service_settings) -> None:
    """``stop_runners`` (a test's stand-in jobs): the service's shutdown kills its local runner; the
    job is then failed on the next read after the lease, and the project is free again."""
    s = service_settings.model_copy(update={"runner_heartbeat_s": 0.2, "runner_lease_s": 1.0})
    sleeping = lambda project, out: [sys.executable, "-c", "import time; time.sleep(600)"]  # noqa: E731

    async def scenario() -> None:
        jobs = RetrainJobs("iris", command=sleeping, settings=s, stop_runners=True)
        job, _ = await jobs.submit()
        for _ in range(3000):  # bounded: until the runner claimed it
            claimed = await jobs.get(job.id)
            if claimed is not None and claimed.pid:
                break
            await asyncio.sleep(0.02)
        assert claimed is not None and claimed.pid and claimed.state == "running"
        await jobs.stop()
        reader = RetrainJobs("iris", command=sleeping, settings=s, stop_runners=True)  # another replica
        for _ in range(3000):
            seen = await reader.get(job.id)
            if seen is not None and not seen.active:
                break
            await asyncio.sleep(0.02)
        assert seen is not None and seen.state == "failed" and "no heartbeat" in (seen.error or "")
        again, created = await reader.submit()
        assert created and again.id != job.id
        await reader.stop()  # kills the second job's runner too

    asyncio.run(scenario())
