"""The prediction log's store: batched inserts, feedback, and the readers of drift and lineage.

The async writer that feeds it from the request path is ``mlops.serving.prediction_writer``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from pydantic_core import from_json, to_json

from mlops.stores.engine import create_engine
from mlops.stores.migrate import ensure_schema
from mlops.stores.tables import feedback, predictions
from mlops.stores.tables import scorings as scorings_table


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
    trace_id: str | None = None  # the request's OpenTelemetry trace (32 hex digits), when tracing is on
    subject_hash: str | None = None  # the keyed hash of the request's subject key (erasure), never the key

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
            self.trace_id,
            self.subject_hash,
        )


@dataclass(slots=True)
class ScoringRecord:
    """A scoring besides the answer (table ``scorings``): a shadow version's prediction of a request,
    or a canary candidate's failure on a request production then answered (``error`` set, no prediction)."""

    request_id: str
    at: datetime
    project: str
    model_name: str
    model_version: str
    role: str  # shadow | canary
    prediction: int | None
    label: str | None
    probabilities: dict[str, float] | None
    latency_ms: float | None
    error: str | None = None

    def values(self) -> tuple[Any, ...]:
        """The row in the order of ``scorings``' columns, without the surrogate ``id``."""
        return (
            self.request_id,
            self.at,
            self.project,
            self.model_name,
            self.model_version,
            self.role,
            self.prediction,
            self.label,
            None if self.probabilities is None else to_json(self.probabilities).decode(),
            self.latency_ms,
            self.error,
        )


@dataclass(frozen=True, slots=True)
class Labelled:
    """A label recorded, and the live evidence of the version that answered the request."""

    request_id: str
    version: str
    correct: bool
    version_correct: int
    version_labelled: int

    @property
    def accuracy(self) -> float | None:
        return self.version_correct / self.version_labelled if self.version_labelled else None


def scorings() -> sa.Subquery:
    """Every (request, version, prediction) scored: the answers (``predictions``) and, UNION ALL, the
    shadow and canary scorings that produced a prediction (a failed candidate scoring has none), so
    live accuracy covers the shadow versions too."""
    answered = sa.select(
        predictions.c.request_id,
        predictions.c.project,
        predictions.c.model_name,
        predictions.c.model_version,
        predictions.c.prediction,
    )
    besides = sa.select(
        scorings_table.c.request_id,
        scorings_table.c.project,
        scorings_table.c.model_name,
        scorings_table.c.model_version,
        scorings_table.c.prediction,
    ).where(scorings_table.c.prediction.is_not(None))
    return sa.union_all(answered, besides).subquery("scorings")


def _live(
    conn: sa.Connection, project: str, version: str | None = None, *, model_name: str | None = None
) -> dict[str, tuple[int, int]]:
    """Labels joined to every scoring of their request, by request id, counted per version."""
    scored = scorings()
    right = sa.func.sum(sa.case((scored.c.prediction == feedback.c.true_label, 1), else_=0))
    query = (
        sa.select(scored.c.model_version, right, sa.func.count())
        .select_from(feedback.join(scored, scored.c.request_id == feedback.c.request_id))
        .where(scored.c.project == project)
        .group_by(scored.c.model_version)
    )
    if version is not None:
        query = query.where(scored.c.model_version == version)
    if model_name is not None:
        query = query.where(scored.c.model_name == model_name)
    return {str(v): (int(ok or 0), int(n)) for v, ok, n in conn.execute(query).all()}


def engine_for(url: str) -> sa.Engine:
    """The prediction log's engine: a small pool on a server database (one writer per worker)."""
    return create_engine(url) if url.startswith("sqlite") else create_engine(url, pool_size=2)


class PredictionStore:
    """SQL of the prediction log. ``engine`` may be replaced (tests simulate outages that way)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = engine_for(url)
        self._insert = BatchInsert(self.engine.dialect)
        self._insert_scorings = BatchInsert(
            self.engine.dialect, scorings_table, ("request_id", "model_version")
        )
        self._from_segment: list[SegmentInsert] | None = None
        if self.engine.dialect.name in {"sqlite", "postgresql"}:
            self._from_segment = [
                SegmentInsert(self.engine.dialect, predictions, ("request_id",), "p"),
                SegmentInsert(self.engine.dialect, scorings_table, ("request_id", "model_version"), "s"),
            ]

    def _ready(self) -> None:
        ensure_schema(self.engine, "predictions")

    def insert(self, records: Sequence[Record | ScoringRecord]) -> int:
        """One transaction for predictions and scorings alike; rows already written (same request id,
        for a scoring same request id and version) are skipped: a retried batch may have been."""
        answers = [r.values() for r in records if isinstance(r, Record)]
        besides = [r.values() for r in records if isinstance(r, ScoringRecord)]
        return self.insert_rows(answers, besides)

    def insert_rows(self, answers: list[tuple[Any, ...]], besides: list[tuple[Any, ...]]) -> int:
        """``insert`` for rows already in column order (``Record.values()``, ``ScoringRecord.values()``:
        what the spool carries); rows new to the database, as far as the driver reports it."""
        self._ready()
        written = 0
        with self.engine.begin() as conn:
            if answers:
                written += self._insert(conn, answers)
            if besides:
                written += self._insert_scorings(conn, besides)
        return written

    def insert_segments(self, documents: list[bytes]) -> int:
        """Spool segments (``mlops.stores.spool``: ``{"p": [prediction rows], "s": [scoring rows]}``)
        in one transaction, skipping rows already written; rows new to the database. On SQLite and
        PostgreSQL the database parses the JSON itself (``SegmentInsert``): no per-row Python."""
        if self._from_segment is None:
            answers, besides = [], []
            for document in documents:
                parsed = from_json(document)
                answers += [_with_time(row) for row in parsed["p"]]
                besides += [_with_time(row) for row in parsed["s"]]
            return self.insert_rows(answers, besides)
        self._ready()
        written = 0
        with self.engine.begin() as conn:
            for document in documents:
                text = document.decode()
                written += sum(insert(conn, text) for insert in self._from_segment)
        return written

    def record_feedback(
        self, request_id: str, project: str, true_label: int, pending: Record | None = None
    ) -> Labelled | None:
        """Store the ground truth of a logged request, replacing an earlier label of it; None when the
        request id is unknown. ``pending``: the request's prediction still in the writer's memory, written
        first (idempotently) so that every label joins a prediction row."""
        self._ready()
        with self.engine.begin() as conn:
            if pending is not None:
                self._insert(conn, [pending.values()])
            answered = conn.execute(
                sa.select(predictions.c.model_version, predictions.c.prediction).where(
                    predictions.c.request_id == request_id
                )
            ).first()
            if answered is None:
                return None
            version, predicted = answered
            correct = int(predicted) == int(true_label)
            values = {
                "at": datetime.now(UTC),
                "project": project,
                "true_label": true_label,
                "correct": correct,
            }
            self._upsert_label(conn, request_id, values)
            right, labelled = _live(conn, project, version).get(version, (0, 0))
        return Labelled(request_id, version, correct, right, labelled)

    def _upsert_label(self, conn: sa.Connection, request_id: str, values: dict[str, Any]) -> None:
        """One label per request: ``ON CONFLICT`` where the dialect has it, else update-or-insert."""
        dialect = conn.dialect.name
        if dialect in {"sqlite", "postgresql"}:
            from sqlalchemy.dialects import postgresql, sqlite

            insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
            statement = insert(feedback).values(request_id=request_id, **values)
            conn.execute(statement.on_conflict_do_update(index_elements=["request_id"], set_=values))
            return
        updated = conn.execute(feedback.update().where(feedback.c.request_id == request_id).values(**values))
        if not updated.rowcount:
            conn.execute(feedback.insert().values(request_id=request_id, **values))

    def live_accuracy(self, project: str, model_name: str | None = None) -> dict[str, tuple[int, int]]:
        """Per model version of ``project`` (of registered model ``model_name`` if given): (correct,
        labelled) over the labelled requests it scored."""
        self._ready()
        with self.engine.connect() as conn:
            return _live(conn, project, model_name=model_name)

    def dispose(self) -> None:
        self.engine.dispose()


class BatchInsert:
    """Insert a batch of rows into ``table``, skipping rows whose ``key`` was written already (a
    retried batch may have been).

    Rows go to the driver as tuples in one call: SQLAlchemy's per-row parameter handling cost ~15 us
    of CPU per row, on the core that serves predictions. Values still pass through the columns' own
    bind processors (SQLite stores datetimes as SQLAlchemy reads them back). A surrogate ``id``
    column is left to the database.
    """

    def __init__(
        self, dialect: sa.Dialect, table: sa.Table = predictions, key: tuple[str, ...] = ("request_id",)
    ) -> None:
        self.dialect = dialect.name
        self.table = table
        columns = [c for c in table.c if c.name != "id"]
        self.keys = [c.name for c in columns]
        processors = [c.type.dialect_impl(dialect).bind_processor(dialect) for c in columns]
        self.processors = [(i, p) for i, p in enumerate(processors) if p is not None]
        names = ", ".join(self.keys)
        conflict = f"ON CONFLICT ({', '.join(key)}) DO NOTHING"
        if self.dialect == "sqlite":
            marks = ", ".join("?" * len(columns))
            self.sql = f"INSERT INTO {table.name} ({names}) VALUES ({marks}) {conflict}"
        elif self.dialect == "postgresql":
            self.sql = f"INSERT INTO {table.name} ({names}) VALUES %s {conflict}"
        else:  # other databases: SQLAlchemy's generic path
            self.statement = (
                table.insert().prefix_with("IGNORE")
                if self.dialect in {"mysql", "mariadb"}
                else table.insert()
            )

    def __call__(self, conn: sa.Connection, rows: list[tuple[Any, ...]]) -> int:
        """Rows inserted (those skipped as written already do not count)."""
        if self.processors:
            rows = [self._processed(row) for row in rows]
        if self.dialect == "sqlite":
            return max(conn.exec_driver_sql(self.sql, rows).rowcount, 0)  # executemany: one C loop
        if self.dialect == "postgresql":
            from psycopg2.extras import execute_values  # one multi-row statement, rows encoded in C

            with conn.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
                execute_values(cursor, self.sql, rows, page_size=len(rows))
                return max(cursor.rowcount, 0)
        result = conn.execute(self.statement, [dict(zip(self.keys, row, strict=True)) for row in rows])
        return max(result.rowcount, 0)

    def _processed(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        values = list(row)
        for i, process in self.processors:
            values[i] = process(values[i])
        return tuple(values)


class SegmentInsert:
    """Insert the rows of one part (``"p"`` or ``"s"``) of a spool segment's JSON text with one
    statement, the database doing the parsing: SQLite's ``json_each`` (C code in the shipper's
    process), PostgreSQL's ``json_array_elements`` (in the server). Each row is a JSON array in the
    column order of ``table`` (without ``id``); times are ISO 8601 strings in UTC (pydantic-core's
    encoding), stored on SQLite in SQLAlchemy's own text format so that reads are unchanged."""

    def __init__(self, dialect: sa.Dialect, table: sa.Table, key: tuple[str, ...], part: str) -> None:
        columns = [c for c in table.c if c.name != "id"]
        names = ", ".join(c.name for c in columns)
        conflict = f"ON CONFLICT ({', '.join(key)}) DO NOTHING"
        if dialect.name == "sqlite":
            fields = [self._sqlite(i, c) for i, c in enumerate(columns)]
            source = f"json_each(?, '$.{part}') WHERE true"  # WHERE: SQLite's upsert-after-SELECT rule
        else:
            fields = [self._postgres(i, c) for i, c in enumerate(columns)]
            source = f"json_array_elements(%s::json -> '{part}') AS value"
        self.sql = f"INSERT INTO {table.name} ({names}) SELECT {', '.join(fields)} FROM {source} {conflict}"
        self.sqlite = dialect.name == "sqlite"

    @staticmethod
    def _sqlite(i: int, column: sa.Column[Any]) -> str:
        value = f"json_extract(value, '$[{i}]')"
        if isinstance(column.type, sa.DateTime):  # 2026-03-01T12:30:00.123456Z -> 2026-03-01 12:30:00.123456
            return f"substr(rtrim(replace({value}, 'T', ' '), 'Z'), 1, 26)"
        return value

    @staticmethod
    def _postgres(i: int, column: sa.Column[Any]) -> str:
        value = f"(value ->> {i})"
        if isinstance(column.type, sa.DateTime):
            return f"{value}::timestamptz"
        if isinstance(column.type, sa.Integer):
            return f"{value}::integer"
        if isinstance(column.type, sa.Float):
            return f"{value}::double precision"
        return value

    def __call__(self, conn: sa.Connection, document: str) -> int:
        if self.sqlite:
            return max(conn.exec_driver_sql(self.sql, (document,)).rowcount, 0)
        with conn.connection.driver_connection.cursor() as cursor:  # type: ignore[union-attr]
            cursor.execute(self.sql, (document,))
            return max(cursor.rowcount, 0)


def _with_time(row: list[Any]) -> tuple[Any, ...]:
    row[1] = datetime.fromisoformat(row[1])  # the "at" of both row kinds
    return tuple(row)


# ----- readers for drift, lineage and tests -----
def get_prediction(url: str, request_id: str) -> dict[str, Any] | None:
    engine = engine_for(url)
    try:
        ensure_schema(engine, "predictions")
        with engine.connect() as conn:
            row = (
                conn.execute(sa.select(predictions).where(predictions.c.request_id == request_id))
                .mappings()
                .first()
            )
    finally:
        engine.dispose()
    if row is None:
        return None
    out = dict(row)
    out["inputs"] = json.loads(out["inputs"])
    out["probabilities"] = json.loads(out["probabilities"])
    at: datetime = out["at"]
    out["at"] = (at if at.tzinfo else at.replace(tzinfo=UTC)).isoformat()  # SQLite keeps no zone: UTC
    return out


def read_predictions(url: str, project: str, limit: int | None = None) -> Any:
    """The most recent predictions of a project: one column per input feature plus metadata."""
    import pandas as pd

    engine = engine_for(url)
    try:
        ensure_schema(engine, "predictions")
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
