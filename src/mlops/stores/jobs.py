"""Retrain jobs in the control database: recorded by the service, run by a runner, read by anyone.

One table, no scheduler. A job is ``queued`` (waiting for a runner), ``running`` (a runner claimed it
and heartbeats), then ``succeeded`` or ``failed``. Single-flight per project across every worker and
replica: ``active_key`` is the project while the job is queued or running, NULL once it finished, and
a unique constraint allows one such row (as ``stores/rollouts.py``). Every change is a compare-and-set
UPDATE on what the writer read (the state, the runner), so two runners never claim one job and a
runner that lost its job never writes over the reaper.

Leases: ``heartbeat_at`` is the time the job's holder last said it is alive (the service that starts
a local runner holds it until the runner claims it; a queued job waiting for an external worker has
none). A job whose heartbeat is older than the lease is failed and its ``active_key`` released by
whoever looks next (``reap``: a submit, a status read, any runner's loop), so a dead runner never
blocks the next job. Time is the database server's clock on Postgres (every runner and replica
compares against one clock), the machine's on SQLite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

import sqlalchemy as sa

from mlops.errors import JobResult, error_from_data
from mlops.stores.engine import create_engine
from mlops.stores.locks import transaction_control, write_transaction
from mlops.stores.migrate import ensure_schema
from mlops.stores.tables import jobs

if TYPE_CHECKING:
    from mlops.settings import Settings

State = Literal["queued", "running", "succeeded", "failed"]
ACTIVE: tuple[str, ...] = ("queued", "running")
LOG_LINES = 50  # the log tail kept in the row
LINE_CHARS = 500  # and each line's length: the row stays small whatever the pipeline prints


@dataclass(frozen=True, slots=True)
class Job:
    id: str
    project: str
    kind: str
    state: State
    created_at: datetime
    started_at: datetime | None = None
    heartbeat_at: datetime | None = None
    finished_at: datetime | None = None
    runner: str | None = None
    pid: int | None = None
    model_version: str | None = None
    promotion: dict[str, Any] | None = None
    error: str | None = None
    log_tail: list[str] = field(default_factory=list)

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def as_dict(self) -> dict[str, Any]:
        """The job as the service shows it (``serving.schemas.RetrainJob``)."""

        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "job_id": self.id,
            "state": self.state,
            "project": self.project,
            "created_at": iso(self.created_at),
            "started_at": iso(self.started_at),
            "heartbeat_at": iso(self.heartbeat_at),
            "finished_at": iso(self.finished_at),
            "runner": self.runner,
            "model_version": self.model_version,
            "promotion": self.promotion,
            "error": self.error,
            "log_tail": list(self.log_tail),
        }


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite keeps no zone: UTC


def bounded_tail(lines: list[str]) -> str:
    """The last LOG_LINES lines, each cut to LINE_CHARS, as the row stores them."""
    return "\n".join(line[:LINE_CHARS] for line in lines[-LOG_LINES:])


def _job(row: Any) -> Job:
    created = _utc(row.created_at)
    assert created is not None
    result = json.loads(row.result) if row.result else {}
    promotion = (result.get("outputs") or {}).get("promotion")
    return Job(
        id=row.id,
        project=row.project,
        kind=row.kind,
        state=row.state,
        created_at=created,
        started_at=_utc(row.started_at),
        heartbeat_at=_utc(row.heartbeat_at),
        finished_at=_utc(row.finished_at),
        runner=row.runner,
        pid=row.pid,
        model_version=row.model_version,
        promotion=promotion if isinstance(promotion, dict) else None,
        error=row.error,
        log_tail=row.log_tail.splitlines() if row.log_tail else [],
    )


class JobStore:
    """The ``jobs`` table of the control database."""

    def __init__(self, url: str, *, engine: sa.Engine | None = None) -> None:
        self.url = url
        self.engine = transaction_control(engine or create_engine(url))

    @classmethod
    def for_settings(cls, settings: Settings) -> JobStore:
        return cls(settings.audit_url)

    def _ready(self) -> None:
        ensure_schema(self.engine, "control")

    @staticmethod
    def _now(conn: sa.Connection) -> datetime:
        if conn.dialect.name == "postgresql":
            now = conn.execute(sa.text("SELECT now()")).scalar_one()
            return now if now.tzinfo else now.replace(tzinfo=UTC)
        return datetime.now(UTC)

    # ----- reads -----
    def get(self, job_id: str) -> Job | None:
        self._ready()
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).first()
        return _job(row) if row is not None else None

    def active(self, project: str) -> Job | None:
        """The project's queued or running job, if any."""
        self._ready()
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(jobs).where(jobs.c.active_key == project)).first()
        return _job(row) if row is not None else None

    def latest(self, project: str) -> Job | None:
        """The project's most recent job, active or finished."""
        self._ready()
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(jobs).where(jobs.c.project == project).order_by(jobs.c.created_at.desc()).limit(1)
            ).first()
        return _job(row) if row is not None else None

    # ----- changes: each one write transaction, each a compare-and-set -----
    def submit(self, project: str, *, lease_s: float, held: bool, kind: str = "train") -> tuple[Job, bool]:
        """A new job for ``project`` (created=True), or the one already queued or running (False).

        ``held``: the caller itself starts the runner (the local runner), so the job is ``running``
        from the start and the caller's heartbeat stands until the runner claims it: a runner that
        never starts is reaped after ``lease_s`` like one that died. Otherwise the job is ``queued``
        for any ``mlops worker`` and has no lease until one claims it. A stale active job is reaped
        first, so a dead runner never blocks this request."""
        self._ready()
        for _ in range(2):
            answer = self._submit(project, lease_s=lease_s, held=held, kind=kind)
            if answer is not None:
                return answer
        raise RuntimeError(f"the active job of {project!r} kept changing while a new one was submitted")

    def _submit(self, project: str, *, lease_s: float, held: bool, kind: str) -> tuple[Job, bool] | None:
        with write_transaction(self.engine) as conn:
            now = self._now(conn)
            self._reap(conn, now, lease_s, project)
            values = {
                "id": uuid.uuid4().hex,
                "project": project,
                "kind": kind,
                "state": "running" if held else "queued",
                "created_at": now,
                "started_at": now if held else None,
                "heartbeat_at": now if held else None,
                "log_tail": "",
                "active_key": project,
            }
            try:
                with conn.begin_nested():
                    conn.execute(jobs.insert().values(**values))
            except sa.exc.IntegrityError:  # another request of any worker or replica came first
                row = conn.execute(sa.select(jobs).where(jobs.c.active_key == project)).first()
                if row is None:  # Postgres: it finished between our insert and this read; again
                    return None
                return _job(row), False
            row = conn.execute(sa.select(jobs).where(jobs.c.id == values["id"])).one()
        return _job(row), True

    def claim(
        self, runner: str, *, pid: int | None = None, job_id: str | None = None, project: str | None = None
    ) -> Job | None:
        """Take a job nobody runs yet: ``job_id`` (the local runner its service started) or the oldest
        queued one (of ``project``, when given). None when there is none or another runner won."""
        self._ready()
        with write_transaction(self.engine) as conn:
            now = self._now(conn)
            free = sa.and_(jobs.c.runner.is_(None), jobs.c.state.in_(ACTIVE))
            if job_id is not None:
                target = job_id
            else:
                query = sa.select(jobs.c.id).where(free, jobs.c.state == "queued")
                if project is not None:
                    query = query.where(jobs.c.project == project)
                found = conn.execute(query.order_by(jobs.c.created_at).limit(1)).scalar()
                if found is None:
                    return None
                target = found
            taken = conn.execute(
                jobs.update()
                .where(jobs.c.id == target, free)
                .values(state="running", runner=runner, pid=pid, started_at=now, heartbeat_at=now)
            )
            if not taken.rowcount:
                return None
            row = conn.execute(sa.select(jobs).where(jobs.c.id == target)).one()
        return _job(row)

    def heartbeat(self, job_id: str, runner: str, log_tail: list[str] | None = None) -> bool:
        """The runner is alive (and its log so far); False when the job is no longer its own (reaped
        as stale, or finished): the runner must then stop and write nothing."""
        self._ready()
        values: dict[str, Any] = {}
        if log_tail is not None:
            values["log_tail"] = bounded_tail(log_tail)
        with write_transaction(self.engine) as conn:
            beat = conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.runner == runner, jobs.c.state == "running")
                .values(heartbeat_at=self._now(conn), **values)
            )
        return bool(beat.rowcount)

    def hold(self, job_id: str) -> bool:
        """The heartbeat of a job nobody claimed yet, by whoever started its runner (the service,
        while its local runner starts up); False once a runner claimed it or it ended."""
        self._ready()
        with write_transaction(self.engine) as conn:
            held = conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.runner.is_(None), jobs.c.state == "running")
                .values(heartbeat_at=self._now(conn))
            )
        return bool(held.rowcount)

    def finish(self, job_id: str, runner: str, result: JobResult, log_tail: list[str]) -> Job | None:
        """Write the outcome from the training's result and release the project; None when the job
        was no longer this runner's (the reaper failed it first: its verdict stands)."""
        values: dict[str, Any] = {"log_tail": bounded_tail(log_tail)}
        values["result"] = json.dumps(
            {"ok": result.ok, "outputs": result.outputs, "error": result.error}, default=str
        )
        if result.ok:
            values.update(state="succeeded", model_version=result.model_version)
        else:
            error = error_from_data(result.error or {"message": "training failed without an error"})
            values.update(state="failed", error=str(error))
        return self._end(job_id, values, runner=runner)

    def fail(
        self, job_id: str, error: str, *, runner: str | None = None, log_tail: list[str] | None = None
    ) -> Job | None:
        """Fail an active job (``runner``: only while it is that runner's; None: only while nobody
        claimed it, e.g. its local runner could not be started). None when the CAS found nothing."""
        values: dict[str, Any] = {"state": "failed", "error": error}
        if log_tail is not None:
            values["log_tail"] = bounded_tail(log_tail)
        return self._end(job_id, values, runner=runner)

    def reap(self, lease_s: float, project: str | None = None) -> list[Job]:
        """Fail every active job whose heartbeat is older than ``lease_s`` (its runner died or hung)
        and release its project; the jobs reaped. A read first: no write lock when nothing is stale."""
        self._ready()
        with self.engine.connect() as conn:
            now = self._now(conn)
            stale = conn.execute(sa.select(jobs.c.id).where(self._stale(now, lease_s, project))).first()
        if stale is None:
            return []
        with write_transaction(self.engine) as conn:
            return self._reap(conn, self._now(conn), lease_s, project)

    # ----- internals -----
    @staticmethod
    def _stale(now: datetime, lease_s: float, project: str | None) -> sa.ColumnElement[bool]:
        cutoff = now - timedelta(seconds=lease_s)
        clause = sa.and_(
            jobs.c.state.in_(ACTIVE), jobs.c.heartbeat_at.is_not(None), jobs.c.heartbeat_at < cutoff
        )
        return sa.and_(clause, jobs.c.project == project) if project is not None else clause

    def _reap(self, conn: sa.Connection, now: datetime, lease_s: float, project: str | None) -> list[Job]:
        rows = conn.execute(sa.select(jobs).where(self._stale(now, lease_s, project))).all()
        reaped = []
        for row in rows:
            holder = f"runner {row.runner}" if row.runner else "its runner (never started)"
            error = f"{holder} lost: no heartbeat for more than {lease_s:g} s (it died or hung)"
            changed = conn.execute(
                jobs.update()
                .where(
                    jobs.c.id == row.id, jobs.c.state == row.state, jobs.c.heartbeat_at == row.heartbeat_at
                )
                .values(state="failed", error=error, finished_at=now, active_key=None)
            )
            if changed.rowcount:
                reaped.append(_job(conn.execute(sa.select(jobs).where(jobs.c.id == row.id)).one()))
        return reaped

    def _end(self, job_id: str, values: dict[str, Any], *, runner: str | None) -> Job | None:
        self._ready()
        with write_transaction(self.engine) as conn:
            owner = jobs.c.runner.is_(None) if runner is None else jobs.c.runner == runner
            ended = conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.state.in_(ACTIVE), owner)
                .values(finished_at=self._now(conn), active_key=None, **values)
            )
            if not ended.rowcount:
                return None
            row = conn.execute(sa.select(jobs).where(jobs.c.id == job_id)).one()
        return _job(row)

    def dispose(self) -> None:
        self.engine.dispose()


# ----- the local runner of the embedded default: started by whoever recorded the job -----
# The service (``serving/jobs.py``) and the monitor (``monitoring/loop.py``) both record jobs and,
# with ``runner = "local"``, start the job's runner themselves: what they share lives here, below both.


def runner_command(job_id: str, train: list[str] | None = None) -> list[str]:
    """The local runner of job ``job_id`` (``train``: its training child's argv template)."""
    command = [sys.executable, "-m", "mlops.worker", "run", "--job", job_id]
    return [*command, "--train-command", json.dumps(train)] if train else command


def runner_environment(settings: Settings) -> dict[str, str]:
    """This process's environment with ``settings`` as ``MLOPS_*`` variables: the runner reads the
    same settings its starter runs with (secrets, which ``step_parameters`` leaves out, stay as the
    environment has them)."""
    env = dict(os.environ)
    for name, value in settings.step_parameters().items():
        key = f"MLOPS_{name.upper()}"
        if value is None:
            env.pop(key, None)
        elif isinstance(value, bool):
            env[key] = "true" if value else "false"
        elif isinstance(value, dict | list):
            env[key] = json.dumps(value)
        else:
            env[key] = str(value)
    return env


def start_local_runner(
    settings: Settings, store: JobStore, job: Job, train: list[str] | None = None
) -> tuple[Job, subprocess.Popen[bytes] | None]:
    """Start ``python -m mlops.worker run --job ID`` for ``job`` (submitted ``held``), detached in
    its own session so it outlives its starter; its output goes to ``<state>/runners/ID.log``. A
    runner that cannot be started fails the job at once (the job, and None)."""
    folder = settings.state_dir / "runners"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / f"{job.id}.log").open("ab") as log:
            proc = subprocess.Popen(
                runner_command(job.id, train),
                env=runner_environment(settings),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own session: outlives the request, the service, the monitor
            )
    except OSError as exc:
        failed = store.fail(job.id, f"could not start the local runner: {exc}")
        return failed or job, None
    return job, proc


def hold_until_claimed(
    store: JobStore, job_id: str, proc: subprocess.Popen[bytes], *, every_s: float, timeout_s: float
) -> Job | None:
    """Heartbeat ``job_id`` for its local runner until the runner claims it (a runner slow to start
    is not reaped as one that never started); the job as it then stands. A runner that exits before
    claiming fails the job; after ``timeout_s`` the holder gives up and the lease decides."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = store.get(job_id)
        if job is None or job.runner is not None or not job.active:
            return job
        code = proc.poll()
        if code is not None:
            return store.fail(job_id, f"the local runner exited with {code} before claiming the job") or job
        if time.monotonic() >= deadline:
            return job
        store.hold(job_id)
        time.sleep(min(every_s, 0.2))
