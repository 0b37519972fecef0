"""Retraining over HTTP: one job at a time, as a worker process running the training pipeline.

Single-flight: while a job runs, a new request gets that job back. With a state folder, this holds
across the worker processes of one service (``mlops serve --workers N``): the running job owns an
exclusive ``flock`` on ``retrain.lock`` and every job's status is a JSON file any worker can read.
(Replicas on other hosts each have their own; the registry's compare-and-set promotion keeps them
safe.) The pipeline runs in its own process, ``python -m mlops.worker train`` (never in the request
thread, never through a Docker socket); the result file it writes (``mlops.errors.JobResult``)
gives the new version and the promotion decision, or the error as data; its output is the log tail.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from mlops.errors import JobResult, error_from_data
from mlops.serving import instruments

# (project, result file) -> argv of a process that trains and writes a WorkerResult to the file.
Command = Callable[[str, Path], list[str]]
LOG_TAIL = 50


def train_command(project: str, result: Path) -> list[str]:
    return [sys.executable, "-m", "mlops.worker", "train", "--project", project, "--result", str(result)]


@dataclass
class Job:
    job_id: str
    project: str
    state: str = "running"
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    finished_at: str | None = None
    model_version: str | None = None
    promotion: dict[str, Any] | None = None
    error: str | None = None
    log: deque[str] = field(default_factory=lambda: deque(maxlen=200))

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "state": self.state,
            "project": self.project,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "model_version": self.model_version,
            "promotion": self.promotion,
            "error": self.error,
            "log_tail": list(self.log)[-LOG_TAIL:],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        tail = data.pop("log_tail", [])
        job = cls(**data)
        job.log.extend(tail)
        return job


class RetrainJobs:
    def __init__(
        self,
        project: str,
        command: Command = train_command,
        on_done: Callable[[], Awaitable[Any]] | None = None,
        *,
        state_dir: Path | None = None,
        keep: int = 50,
    ) -> None:
        self.project = project
        self.command = command
        self.on_done = on_done
        self.jobs: dict[str, Job] = {}
        self.keep = keep
        self.running: Job | None = None
        self.folder = state_dir / "retrain-jobs" if state_dir is not None else None
        self._lock_file: IO[str] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ----- submit: atomic on the event loop, and across workers through the lock file -----
    def submit(self) -> tuple[Job, bool]:
        """The running job if there is one (created=False), else a new one."""
        if self.running is not None:
            return self.running, False
        deadline = time.monotonic() + 2.0
        while not self._acquire():
            other = self._running_elsewhere()
            if other is not None:
                return other, False
            if time.monotonic() > deadline:  # the other worker holds the lock but wrote no job
                raise RuntimeError("another worker holds the retrain lock without a readable job")
            time.sleep(0.01)
        job = Job(job_id=uuid.uuid4().hex, project=self.project)
        self.running = job
        self.jobs[job.job_id] = job
        while len(self.jobs) > self.keep:
            self.jobs.pop(next(iter(self.jobs)))
        self._save(job)
        if self._lock_file is not None:  # tells the other workers which job runs
            self._lock_file.seek(0)
            self._lock_file.truncate()
            self._lock_file.write(job.job_id)
            self._lock_file.flush()
        instruments.RETRAIN_JOBS.labels(state="started").inc()
        task = asyncio.create_task(self._run(job), name=f"retrain-{job.job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job, True

    def get(self, job_id: str) -> Job | None:
        job = self.jobs.get(job_id)
        if job is not None or self.folder is None or not job_id.isalnum():
            return job
        return self._load(job_id)

    def _acquire(self) -> bool:
        if self.folder is None:
            return True
        self.folder.mkdir(parents=True, exist_ok=True)
        handle = (self.folder / "retrain.lock").open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._lock_file = handle
        return True

    def _release(self) -> None:
        if self._lock_file is not None:
            self._lock_file.seek(0)
            self._lock_file.truncate()
            fcntl.flock(self._lock_file, fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def _running_elsewhere(self) -> Job | None:
        assert self.folder is not None
        with contextlib.suppress(OSError):
            job_id = (self.folder / "retrain.lock").read_text().strip()
            job = self._load(job_id) if job_id else None
            if job is not None and job.state == "running":
                return job
        return None

    def _save(self, job: Job) -> None:
        if self.folder is None:
            return
        target = self.folder / f"{job.job_id}.json"
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(job.as_dict()))
        tmp.replace(target)  # atomic: readers see the old or the new state, whole

    def _load(self, job_id: str) -> Job | None:
        assert self.folder is not None
        try:
            return Job.from_dict(json.loads((self.folder / f"{job_id}.json").read_text()))
        except (OSError, ValueError, TypeError):
            return None

    # ----- the job -----
    async def _run(self, job: Job) -> None:
        proc: asyncio.subprocess.Process | None = None
        try:
            with tempfile.TemporaryDirectory(prefix="mlops-retrain-") as tmp:
                result_file = Path(tmp) / "result.json"
                proc = await asyncio.create_subprocess_exec(
                    *self.command(job.project, result_file),
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                )
                await self._follow_log(job, proc)
                code = await proc.wait()
                self._finish(job, code, result_file)
        except asyncio.CancelledError:
            job.state, job.error = "failed", "cancelled: the service shut down"
            if proc is not None and proc.returncode is None:
                proc.kill()  # no orphaned pipeline after the service is gone
            raise
        except Exception as exc:
            job.state = "failed"
            job.error = f"{type(exc).__name__}: {exc}"
        finally:
            job.finished_at = datetime.now(UTC).isoformat()
            instruments.RETRAIN_JOBS.labels(state=job.state).inc()
            with contextlib.suppress(OSError):
                self._save(job)
            self.running = None
            self._release()
        if job.state == "succeeded" and self.on_done is not None:
            with contextlib.suppress(Exception):
                await self.on_done()

    async def _follow_log(self, job: Job, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        saved = time.monotonic()
        async for line in proc.stdout:
            job.log.append(line.decode(errors="replace").rstrip())
            if time.monotonic() - saved > 1.0:  # other workers see the log grow
                self._save(job)
                saved = time.monotonic()

    @staticmethod
    def _finish(job: Job, code: int, result_file: Path) -> None:
        """The job's outcome from the worker's result file (data, never its printed output)."""
        try:
            result = JobResult.read(result_file)
        except (OSError, ValueError, KeyError, TypeError):
            job.state, job.error = "failed", f"training exited with {code} without writing a result"
            return
        if result.ok:
            job.state = "succeeded"
            job.model_version = result.model_version
            job.promotion = result.outputs.get("promotion")
        else:
            job.state = "failed"
            job.error = str(error_from_data(result.error or {"message": f"training exited with {code}"}))

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
