"""Append-only audit log of every governance decision, in any SQLAlchemy database.

The log offers ``record`` and ``history`` and nothing that updates or deletes. On SQLite the
table is also guarded by triggers, so even a hand-written UPDATE or DELETE is refused.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from mlops.db import create_engine

metadata = sa.MetaData()
audit_table = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("action", sa.String(50), nullable=False),
    sa.Column("project", sa.String(100), nullable=False),
    sa.Column("model_name", sa.String(200), nullable=False),
    sa.Column("alias", sa.String(50)),
    sa.Column("from_version", sa.String(50)),
    sa.Column("to_version", sa.String(50)),
    sa.Column("decision", sa.String(50), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("details", sa.Text, nullable=False, default="{}"),
)

_SQLITE_GUARDS = (
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log "
    "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
)


@dataclass
class AuditEvent:
    action: str  # promote | rollback | train | pipeline
    project: str
    model_name: str
    decision: str  # promoted | kept | rejected | refused | succeeded | failed
    reason: str
    actor: str
    alias: str | None = None
    from_version: str | None = None
    to_version: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    id: int | None = None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["at"] = self.at.isoformat()
        return d


class AuditLog:
    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: sa.Engine | None = None

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            self._engine = create_engine(self.url, pool_pre_ping=True)
            metadata.create_all(self._engine)
            if self._engine.dialect.name == "sqlite":
                with self._engine.begin() as conn:
                    for ddl in _SQLITE_GUARDS:
                        conn.exec_driver_sql(ddl)
        return self._engine

    def record(self, event: AuditEvent) -> AuditEvent:
        row = event.as_dict()
        row.pop("id")
        row["at"] = event.at
        row["details"] = json.dumps(event.details, default=str, sort_keys=True)
        with self.engine.begin() as conn:
            result = conn.execute(audit_table.insert().values(**row))
            event.id = int(result.inserted_primary_key[0]) if result.inserted_primary_key else None
        return event

    def history(
        self, *, project: str | None = None, model_name: str | None = None, limit: int | None = None
    ) -> list[AuditEvent]:
        query = sa.select(audit_table).order_by(audit_table.c.id)
        if project:
            query = query.where(audit_table.c.project == project)
        if model_name:
            query = query.where(audit_table.c.model_name == model_name)
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        events = []
        for r in rows:
            data = dict(r)
            data["details"] = json.loads(data["details"] or "{}")
            at = data["at"]
            data["at"] = at if at.tzinfo else at.replace(tzinfo=UTC)
            events.append(AuditEvent(**data))
        return events[-limit:] if limit else events

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
