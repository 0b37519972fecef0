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
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from mlops.serving import metrics

if TYPE_CHECKING:
    from mlops.settings import Settings

logger = logging.getLogger(__name__)

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


@dataclass(frozen=True)
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

    def row(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "at": self.at,
            "project": self.project,
            "model_name": self.model_name,
            "model_version": self.model_version,
            "runtime": self.runtime,
            "inputs": json.dumps(self.inputs),
            "prediction": self.prediction,
            "label": self.label,
            "probabilities": json.dumps(self.probabilities),
            "latency_ms": self.latency_ms,
        }


def engine_for(url: str) -> sa.Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 5})
    else:
        engine = sa.create_engine(url, pool_pre_ping=True, pool_size=2, connect_args=_connect_timeout(url))
    return engine


def _connect_timeout(url: str) -> dict[str, Any]:
    return {"connect_timeout": 3} if url.startswith(("postgresql", "mysql")) else {}


class PredictionLog:
    def __init__(self, url: str, *, max_queue: int = 10_000, flush_s: float = 0.5, batch: int = 500) -> None:
        self.url = url
        self.queue: asyncio.Queue[Record] = asyncio.Queue(maxsize=max_queue)
        self.max_queue = max_queue
        self.flush_s = flush_s
        self.batch = batch
        self.engine = engine_for(url)
        self._ready = False
        self._pending: list[Record] = []
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

    # ----- request path -----
    def submit(self, record: Record) -> None:
        self.recent[record.request_id] = record
        if len(self.recent) > self.max_queue:
            self.recent.popitem(last=False)
        try:
            self.queue.put_nowait(record)
        except asyncio.QueueFull:
            metrics.LOG_DROPPED.inc()
        metrics.LOG_QUEUE.set(self.queue.qsize() + len(self._pending))

    # ----- background -----
    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="prediction-log")

    async def stop(self) -> None:
        """Graceful shutdown: let the loop finish its write, then drain everything still queued."""
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=self.flush_s + 10)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        while not self.queue.empty():
            self._pending.append(self.queue.get_nowait())
        while self._pending and await self._flush():
            pass
        if self._pending:
            metrics.LOG_DROPPED.inc(len(self._pending))
            logger.error(
                "prediction log: %d records lost at shutdown (database unreachable)", len(self._pending)
            )
        self.engine.dispose()

    async def _run(self) -> None:
        backoff = self.flush_s
        while not self._stopping.is_set():
            try:
                first = await asyncio.wait_for(self.queue.get(), timeout=self.flush_s)
                self._pending.append(first)
            except TimeoutError:
                pass
            while len(self._pending) < self.batch and not self.queue.empty():
                self._pending.append(self.queue.get_nowait())
            if not self._pending:
                continue
            if await self._flush():
                backoff = self.flush_s
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=backoff)
                backoff = min(backoff * 2, 10.0)

    async def _flush(self) -> bool:
        batch = self._pending[: self.batch * 4]
        try:
            await asyncio.to_thread(self._write, [r.row() for r in batch])
        except Exception as exc:  # the database being down must never reach a prediction
            logger.warning("prediction log: write of %d records failed, will retry: %s", len(batch), exc)
            overflow = len(self._pending) + self.queue.qsize() - self.max_queue
            if overflow > 0:  # bounded: the oldest records go first, counted
                del self._pending[:overflow]
                metrics.LOG_DROPPED.inc(overflow)
            return False
        del self._pending[: len(batch)]
        metrics.LOG_WRITTEN.inc(len(batch))
        metrics.LOG_QUEUE.set(self.queue.qsize() + len(self._pending))
        return True

    def _write(self, rows: list[dict[str, Any]]) -> None:
        if not self._ready:
            meta.create_all(self.engine)
            self._ready = True
        with self.engine.begin() as conn:
            conn.execute(_insert_ignoring_duplicates(self.engine.dialect.name), rows)

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


def _insert_ignoring_duplicates(dialect: str) -> Any:
    """A retried batch may have been written already: rows whose request id exists are skipped."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(predictions).on_conflict_do_nothing(index_elements=["request_id"])
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(predictions).on_conflict_do_nothing(index_elements=["request_id"])
    return (
        predictions.insert().prefix_with("IGNORE")
        if dialect in {"mysql", "mariadb"}
        else predictions.insert()
    )


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
    except sa.exc.OperationalError:
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
    finally:
        engine.dispose()
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame([dict(r) for r in rows])
    inputs = pd.DataFrame([json.loads(v) for v in frame.pop("inputs")])
    return pd.concat([inputs, frame], axis=1)
