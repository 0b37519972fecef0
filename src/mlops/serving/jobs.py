"""Retraining over HTTP: one job at a time, as a subprocess running the training pipeline.

Single-flight: while a job runs, a new request gets that job back. The pipeline runs in its own
process (never in the request thread, never through a Docker socket); its JSON result gives the new
version and the promotion decision, its stderr the log tail.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mlops.serving import metrics

Command = Callable[[str], list[str]]


def train_command(project: str) -> list[str]:
    return [sys.executable, "-m", "mlops.cli", "train", "--project", project, "--json"]


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
            "log_tail": list(self.log)[-50:],
        }


class RetrainJobs:
    def __init__(
        self,
        project: str,
        command: Command = train_command,
        on_done: Callable[[], Awaitable[Any]] | None = None,
        keep: int = 50,
    ) -> None:
        self.project = project
        self.command = command
        self.on_done = on_done
        self.jobs: dict[str, Job] = {}
        self.keep = keep
        self.running: Job | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def submit(self) -> tuple[Job, bool]:
        """The running job if there is one (created=False), else a new one. Atomic on the event loop."""
        if self.running is not None:
            return self.running, False
        job = Job(job_id=uuid.uuid4().hex, project=self.project)
        self.running = job
        self.jobs[job.job_id] = job
        while len(self.jobs) > self.keep:
            self.jobs.pop(next(iter(self.jobs)))
        metrics.RETRAIN_JOBS.labels(state="started").inc()
        task = asyncio.create_task(self._run(job), name=f"retrain-{job.job_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return job, True

    async def _run(self, job: Job) -> None:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command(job.project), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            assert proc.stdout is not None and proc.stderr is not None

            async def read_log() -> None:
                assert proc.stderr is not None
                async for line in proc.stderr:
                    job.log.append(line.decode(errors="replace").rstrip())

            stdout, _ = await asyncio.gather(proc.stdout.read(), read_log())
            code = await proc.wait()
            if code != 0:
                raise RuntimeError(f"training exited with {code}")
            result = json.loads(stdout.decode() or "{}")
            job.model_version = str(result.get("model", {}).get("version") or "") or None
            job.promotion = result.get("promotion")
            job.state = "succeeded"
        except Exception as exc:
            job.state = "failed"
            job.error = f"{type(exc).__name__}: {exc}"
        finally:
            job.finished_at = datetime.now(UTC).isoformat()
            metrics.RETRAIN_JOBS.labels(state=job.state if job.state != "running" else "failed").inc()
            self.running = None
        if job.state == "succeeded" and self.on_done is not None:
            with contextlib.suppress(Exception):
                await self.on_done()

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
