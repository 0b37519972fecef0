"""Retraining over HTTP: the service records a job in the control database; a runner trains.

The request handler never trains. ``submit`` writes the job (``stores/jobs.py``: one active job per
project across every worker and replica, by a unique constraint) and returns; the training runs in a
runner process (``python -m mlops.worker``), never in the serving process or pod:

- ``runner = "local"`` (the embedded default): the service that created the job starts a local runner
  for it, ``python -m mlops.worker run --job ID``, detached in its own session, so it outlives the
  request and a restart of the service; the job system owns it, through the row (pid, heartbeat).
  Starting it is shared with the monitor (``stores.jobs.start_local_runner``).
- ``runner = "external"`` (server mode): the job is only recorded as ``queued``; an ``mlops worker``
  (its own compose service or Deployment, on the active ZenML stack) claims it.

State lives in the row, so ``GET /retrain/{id}`` answers the same from any worker or replica; a
runner that dies stops heartbeating and its job is failed after ``runner_lease_s`` by the next read.
A background poll follows the jobs this process has seen: when one succeeds the service re-checks its
alias at once (``on_done``), and the jobs it created are counted by outcome in
``mlops_retrain_jobs_total``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from mlops.serving import instruments
from mlops.settings import Settings, get_settings
from mlops.stores.jobs import Job, JobStore, runner_command, runner_environment, start_local_runner

__all__ = ["RetrainJobs", "runner_command", "runner_environment", "train_command"]

# (project, result file) -> argv of the training child the runner starts (the worker's own by
# default). Called once with the placeholders "{project}" and "{result}": the runner fills them in.
Command = Callable[[str, Path], list[str]]
POLL_S = 1.0


def train_command(project: str, result: Path) -> list[str]:
    return [sys.executable, "-m", "mlops.worker", "train", "--project", project, "--result", str(result)]


class RetrainJobs:
    """The service's side of retrain jobs: record, start a local runner, read, follow."""

    def __init__(
        self,
        project: str,
        command: Command | None = None,
        on_done: Callable[[], Awaitable[Any]] | None = None,
        *,
        state_dir: Path | None = None,
        settings: Settings | None = None,
        poll_s: float = POLL_S,
        stop_runners: bool = False,
    ) -> None:
        """``stop_runners``: ``stop()`` also kills the local runners this process started (a test's
        stand-in jobs); by default they outlive the service and finish their jobs."""
        if settings is None:  # the process's settings, in the given state folder
            settings = get_settings()
            if state_dir is not None:
                settings = settings.model_copy(update={"home": state_dir})
        self.project = project
        self.settings = settings
        self.on_done = on_done
        self.poll_s = poll_s
        self.store = JobStore.for_settings(settings)
        self.train_template = command("{project}", Path("{result}")) if command is not None else None
        self._watched: set[str] = set()  # active jobs this process has seen: followed by the poll
        self._mine: set[str] = set()  # the ones it created: counted by outcome
        self._runners: dict[str, subprocess.Popen[bytes]] = {}  # job id -> its local runner
        self._holding: set[str] = set()  # the ones not claimed yet by their runner
        self._poll: asyncio.Task[None] | None = None
        self.stop_runners = stop_runners

    # ----- the route's calls -----
    async def submit(self) -> tuple[Job, bool]:
        """The active job if there is one (created=False), else a new one, its runner started."""
        local = self.settings.runner == "local"
        job, created = await asyncio.to_thread(
            self.store.submit, self.project, lease_s=self.settings.runner_lease_s, held=local
        )
        if created:
            instruments.RETRAIN_JOBS.labels(state="started").inc()
            self._mine.add(job.id)
            if local:
                job = await asyncio.to_thread(self._start_runner, job)
        self._follow(job)
        return job, created

    async def get(self, job_id: str) -> Job | None:
        """The job as the database has it (stale runners failed first); None for no such job."""
        if not (job_id.isascii() and job_id.isalnum() and len(job_id) <= 64):
            return None
        await asyncio.to_thread(self.store.reap, self.settings.runner_lease_s, self.project)
        job = await asyncio.to_thread(self.store.get, job_id)
        if job is not None:
            await self._observe(job)
        return job

    # ----- the local runner -----
    def _start_runner(self, job: Job) -> Job:
        job, proc = start_local_runner(self.settings, self.store, job, self.train_template)
        if proc is not None:
            self._runners[job.id] = proc
            self._holding.add(job.id)
        return job

    # ----- following jobs: on_done and the outcome counter -----
    def _follow(self, job: Job) -> None:
        if job.active:
            self._watched.add(job.id)
        if self._poll is None or self._poll.done():
            self._poll = asyncio.get_running_loop().create_task(self._polling(), name="retrain-jobs-poll")

    async def _observe(self, job: Job) -> None:
        if job.active:
            self._watched.add(job.id)
            return
        if job.id not in self._watched:
            return
        self._watched.discard(job.id)
        if job.id in self._mine:
            self._mine.discard(job.id)
            instruments.RETRAIN_JOBS.labels(state=job.state).inc()
        if job.state == "succeeded" and self.on_done is not None:
            with contextlib.suppress(Exception):
                await self.on_done()

    async def _polling(self) -> None:
        tick = min(self.poll_s, self.settings.runner_heartbeat_s)
        while self._watched or self._runners:
            await asyncio.sleep(tick)
            # reaps exited runners; the live ones' jobs are held until they claim them (a runner
            # slow to start is not reaped as one that never started)
            self._runners = {j: p for j, p in self._runners.items() if p.poll() is None}
            with contextlib.suppress(Exception):  # a database outage: try again on the next tick
                for job_id in [j for j in self._runners if j in self._holding]:
                    if not await asyncio.to_thread(self.store.hold, job_id):
                        self._holding.discard(job_id)  # claimed (or ended): the runner's now
                await asyncio.to_thread(self.store.reap, self.settings.runner_lease_s, self.project)
                for job_id in list(self._watched):
                    job = await asyncio.to_thread(self.store.get, job_id)
                    if job is not None:
                        await self._observe(job)

    async def stop(self) -> None:
        """Stop following; local runners keep running (their jobs finish in the database) unless
        ``stop_runners``: then they are killed (their jobs fail after the lease)."""
        if self.stop_runners:
            for proc in self._runners.values():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)  # its own session: the runner and its child
                proc.wait()
        if self._poll is not None:
            self._poll.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._poll
        await asyncio.to_thread(self.store.dispose)
