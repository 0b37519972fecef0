"""Append-only audit log of every governance decision, in the control database.

The log offers ``record`` and ``history`` and nothing that updates or deletes; the database refuses
UPDATE and DELETE itself (and TRUNCATE on Postgres), by triggers that a migration installs
(``migrations/versions/control``), so even a hand-written statement cannot rewrite history.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from mlops.stores.engine import create_engine
from mlops.stores.migrate import ensure_schema
from mlops.stores.tables import audit_log


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
            engine = create_engine(self.url)
            ensure_schema(engine, "control")
            self._engine = engine
        return self._engine

    def record(self, event: AuditEvent) -> AuditEvent:
        row = event.as_dict()
        row.pop("id")
        row["at"] = event.at
        row["details"] = json.dumps(event.details, default=str, sort_keys=True)
        with self.engine.begin() as conn:
            result = conn.execute(audit_log.insert().values(**row))
            event.id = int(result.inserted_primary_key[0]) if result.inserted_primary_key else None
        return event

    def history(
        self, *, project: str | None = None, model_name: str | None = None, limit: int | None = None
    ) -> list[AuditEvent]:
        query = sa.select(audit_log).order_by(audit_log.c.id)
        if project:
            query = query.where(audit_log.c.project == project)
        if model_name:
            query = query.where(audit_log.c.model_name == model_name)
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
