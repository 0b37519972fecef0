"""The prediction log: every prediction goes to SQL through a bounded in-memory queue.

``submit`` never blocks and never raises: a full queue drops the record and counts it. A background
task flushes batches off the event loop; when the database is down the batch is kept (bounded by
the queue size) and retried, so an outage loses nothing until the buffer is full. Shutdown drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict, deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pydantic_core import to_json

from mlops.db import create_engine
from mlops.serving import instruments

if TYPE_CHECKING:
    from mlops.settings import Settings

logger = logging.getLogger(__name__)
# Retries back off up to this: while the database is down the buffer is full and every new record
# is dropped, so once it is back each second of backoff is a second of predictions lost.
RETRY_MAX_S = 2.0

meta = sa.MetaData()
predictions = sa.Table(
    "predictions",
    meta,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("project", sa.String(100), nullable=False, index=True),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("model_version", sa.String(50), nullable=False),
    sa.Column("runtime", sa.String(20), nullable=False),
    sa.Column("inputs", sa.Text, nullable=False),
    sa.Column("prediction", sa.Integer, nullable=False),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("probabilities", sa.Text, nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
)
feedback = sa.Table(
    "feedback",
    meta,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("project", sa.String(100), nullable=False),
    sa.Column("true_label", sa.Integer, nullable=False),
    sa.Column("correct", sa.Boolean, nullable=False),
)


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ is several times slower
class Record:
    request_id: str
    at: datetime
    project: str
    model_name: str
    model_version: str
    runtime: str
    inputs: dict[str, Any]
    prediction: int
    label: str
    probabilities: dict[str, float]
    latency_ms: float

    def values(self) -> tuple[Any, ...]:
        """The row in the order of ``predictions``' columns (JSON by pydantic-core: 4x json.dumps' speed)."""
        return (
            self.request_id,
            self.at,
            self.project,
            self.model_name,
            self.model_version,
            self.runtime,
            to_json(self.inputs).decode(),
            self.prediction,
            self.label,
            to_json(self.probabilities).decode(),
            self.latency_ms,
        )


def engine_for(url: str) -> sa.Engine:
    if url.startswith("sqlite:///"):
        engine = create_engine(url, connect_args={"timeout": 5})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    else:
        engine = create_engine(url, pool_pre_ping=True, pool_size=2, connect_args=_connect_timeout(url))
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL: drift and lineage readers never block the writer; NORMAL: no fsync per batch."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _connect_timeout(url: str) -> dict[str, Any]:
    return {"connect_timeout": 3} if url.startswith(("postgresql", "mysql")) else {}


class PredictionLog:
    """Bounded buffer on the request path, batched writes by a background task.

    The writer wakes every ``flush_s`` and writes everything buffered in chunks of ``batch`` (never
    per record: small transactions would cost the hot path more than the model does). A failed write
    keeps its records in the buffer and is retried with backoff; while the buffer is full, new
    records are dropped and counted.
    """

    def __init__(
        self,
        url: str,
        *,
        max_queue: int = 10_000,
        flush_s: float = 0.5,
        batch: int = 1000,
        drain_s: float = 10.0,
    ) -> None:
        self.url = url
        self.buffer: deque[Record] = deque()
        self.max_queue = max_queue
        self.flush_s = flush_s
        self.batch = batch
        self.drain_s = drain_s
        self.engine = engine_for(url)
        self._insert = _BatchInsert(self.engine.dialect)
        self.write_failures = 0
        self._ready = False
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        # Recent predictions for /feedback before they reach the database.
        self.recent: OrderedDict[str, Record] = OrderedDict()

    @classmethod
    def from_settings(cls, settings: Settings) -> PredictionLog:
        return cls(
            settings.prediction_log_db_url,
            max_queue=settings.prediction_log_queue_size,
            flush_s=settings.prediction_log_flush_s,
        )

    # ----- request path: never blocks, never raises -----
    def submit(self, record: Record) -> None:
        self.recent[record.request_id] = record
        if len(self.recent) > self.max_queue:
            self.recent.popitem(last=False)
        if len(self.buffer) >= self.max_queue:
            instruments.LOG_DROPPED.inc()
        else:
            self.buffer.append(record)

    # ----- background -----
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="prediction-log")

    async def stop(self) -> None:
        """Graceful shutdown: the writer finishes its batch, then everything still buffered is written.
        Bounded by ``drain_s`` (a supervisor's kill follows a slow shutdown); what could not be
        written in time is counted as dropped."""
        self._stopping.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drain(), timeout=self.drain_s)
        if self.buffer:
            instruments.LOG_DROPPED.inc(len(self.buffer))
            logger.error(
                "prediction log: %d records lost at shutdown (database unreachable or slow)", len(self.buffer)
            )
            self.buffer.clear()
        instruments.LOG_QUEUE.set(0)
        self.engine.dispose()

    async def _drain(self) -> None:
        if self._task is not None:
            await self._task
        while self.buffer and await self._flush():
            pass

    async def _run(self) -> None:
        wait = self.flush_s
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=wait)
            instruments.LOG_QUEUE.set(len(self.buffer))
            wait = self.flush_s
            # Only what was buffered at wake-up: chasing new arrivals would mean many small
            # transactions (measured: 44 rows and 36 us of CPU per row instead of 250 and 15 us).
            due = len(self.buffer)
            while due > 0 and not self._stopping.is_set():
                written = await self._flush()
                if not written:
                    wait = min(max(self.flush_s, 0.1) * 2 ** min(self.write_failures, 6), RETRY_MAX_S)
                    break
                due -= written

    async def _flush(self) -> int:
        """Write the oldest chunk and drop it from the buffer; rows written (0: failed). Never raises."""
        chunk = [self.buffer[i] for i in range(min(self.batch, len(self.buffer)))]
        try:
            await asyncio.to_thread(self._write, chunk)  # rows are encoded there, off the event loop
        except Exception as exc:  # the database being down must never reach a prediction
            self.write_failures += 1
            logger.warning("prediction log: write of %d records failed, will retry: %s", len(chunk), exc)
            return 0
        for _ in chunk:
            self.buffer.popleft()
        self.write_failures = 0
        instruments.LOG_WRITTEN.inc(len(chunk))
        instruments.LOG_QUEUE.set(len(self.buffer))
        return len(chunk)

    def _write(self, records: list[Record]) -> None:
        if not self._ready:
            meta.create_all(self.engine)
            self._ready = True
        with self.engine.begin() as conn:
            self._insert(conn, [r.values() for r in records])

    # ----- feedback -----
    def record_feedback(
        self, request_id: str, project: str, true_label: int
    ) -> tuple[bool, float | None] | None:
        """Store ground truth for a known prediction; None when the request id is unknown."""
        record = self.recent.get(request_id)
        predicted = record.prediction if record else None
        if not self._ready:
            meta.create_all(self.engine)
            self._ready = True
        with self.engine.begin() as conn:
            if predicted is None:
                predicted = conn.execute(
                    sa.select(predictions.c.prediction).where(predictions.c.request_id == request_id)
                ).scalar_one_or_none()
            if predicted is None:
                return None
            correct = int(predicted) == int(true_label)
            conn.execute(
                feedback.insert().values(
                    request_id=request_id,
                    at=datetime.now(UTC),
                    project=project,
                    true_label=true_label,
                    correct=correct,
                )
            )
            total, right = conn.execute(
                sa.select(sa.func.count(), sa.func.sum(sa.case((feedback.c.correct, 1), else_=0))).where(
                    feedback.c.project == project
                )
            ).one()
        accuracy = float(right or 0) / total if total else None
        return correct, accuracy


class _BatchInsert:
    """Insert a batch of rows, skipping request ids already written (a retried batch may have been).

    Rows go to the driver as tuples in one call: SQLAlchemy's per-row parameter handling cost ~15 us
    of CPU per row, on the core that serves predictions. Values still pass through the columns' own
    bind processors (SQLite stores datetimes as SQLAlchemy reads them back).
    """

    def __init__(self, dialect: sa.Dialect) -> None:
        self.dialect = dialect.name
        columns = list(predictions.c)
        processors = [c.type.dialect_impl(dialect).bind_processor(dialect) for c in columns]
        self.processors = [(i, p) for i, p in enumerate(processors) if p is not None]
        names = ", ".join(c.name for c in columns)
        conflict = "ON CONFLICT (request_id) DO NOTHING"
        if self.dialect == "sqlite":
            marks = ", ".join("?" * len(columns))
            self.sql = f"INSERT INTO predictions ({names}) VALUES ({marks}) {conflict}"
        elif self.dialect == "postgresql":
            self.sql = f"INSERT INTO predictions ({names}) VALUES %s {conflict}"
        else:  # other databases: SQLAlchemy's generic path
            self.statement = (
                predictions.insert().prefix_with("IGNORE")
                if self.dialect in {"mysql", "mariadb"}
                else predictions.insert()
            )

    def __call__(self, conn: sa.Connection, rows: list[tuple[Any, ...]]) -> None:
        if self.processors:
            rows = [self._processed(row) for row in rows]
        if self.dialect == "sqlite":
            conn.exec_driver_sql(self.sql, rows)  # sqlite3's executemany: one C loop
        elif self.dialect == "postgresql":
            from psycopg2.extras import execute_values  # one multi-row statement, rows encoded in C

            with conn.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
                execute_values(cursor, self.sql, rows, page_size=len(rows))
        else:
            keys = [c.name for c in predictions.c]
            conn.execute(self.statement, [dict(zip(keys, row, strict=True)) for row in rows])

    def _processed(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        values = list(row)
        for i, process in self.processors:
            values[i] = process(values[i])
        return tuple(values)


# ----- readers for drift, lineage and tests -----
def get_prediction(url: str, request_id: str) -> dict[str, Any] | None:
    engine = engine_for(url)
    try:
        with engine.connect() as conn:
            row = (
                conn.execute(sa.select(predictions).where(predictions.c.request_id == request_id))
                .mappings()
                .first()
            )
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):  # no table yet (SQLite / Postgres)
        return None
    finally:
        engine.dispose()
    if row is None:
        return None
    out = dict(row)
    out["inputs"] = json.loads(out["inputs"])
    out["probabilities"] = json.loads(out["probabilities"])
    out["at"] = out["at"].isoformat()
    return out


def read_predictions(url: str, project: str, limit: int | None = None) -> Any:
    """The most recent predictions of a project: one column per input feature plus metadata."""
    import pandas as pd

    engine = engine_for(url)
    try:
        query = (
            sa.select(predictions).where(predictions.c.project == project).order_by(predictions.c.at.desc())
        )
        if limit:
            query = query.limit(limit)
        with engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):  # no table yet: no prediction yet
        rows = []
    finally:
        engine.dispose()
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame([dict(r) for r in rows])
    inputs = pd.DataFrame([json.loads(v) for v in frame.pop("inputs")])
    return pd.concat([inputs, frame], axis=1)
