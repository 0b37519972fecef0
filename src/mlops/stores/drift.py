"""History of drift checks in SQL (the ``predictions`` database); read by the service without Evidently."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any, Protocol

import sqlalchemy as sa

from mlops.stores.engine import create_engine
from mlops.stores.migrate import ensure_schema
from mlops.stores.tables import drift_results


class DriftOutcome(Protocol):
    """What a drift check produced (``mlops.monitoring.drift.DriftResult`` has these)."""

    @property
    def rows(self) -> int: ...
    @property
    def share(self) -> float: ...
    @property
    def detected(self) -> bool: ...
    @property
    def features(self) -> dict[str, Any]: ...


_engines: dict[str, sa.Engine] = {}
_lock = threading.Lock()


def engine(db_url: str) -> sa.Engine:
    """One engine per URL for the process, its schema checked (SQLite: upgraded) on first use."""
    with _lock:
        eng = _engines.get(db_url)
        if eng is None:
            eng = create_engine(db_url)
            ensure_schema(eng, "predictions")
            _engines[db_url] = eng
        return eng


def record_drift(
    db_url: str,
    project: str,
    result: DriftOutcome,
    *,
    model_version: str,
    reference_hash: str,
    report_path: str = "",
) -> int:
    """Append one drift check; returns its id."""
    row = {
        "at": datetime.now(UTC),
        "project": project,
        "model_version": str(model_version),
        "reference_hash": reference_hash,
        "current_rows": int(result.rows),
        "share": float(result.share),
        "detected": bool(result.detected),
        "features": json.dumps(result.features, sort_keys=True),
        "report_path": str(report_path),
    }
    with engine(db_url).begin() as conn:
        inserted = conn.execute(drift_results.insert().values(**row))
        key = inserted.inserted_primary_key
        return int(key[0]) if key else 0


def latest_drift(db_url: str, project: str) -> dict[str, Any] | None:
    """The most recent check of ``project``: share, detected, per-feature scores, time, model version.

    ``features`` maps each feature to its drift score; ``drifted_features`` lists the flagged ones.
    None when the project has no check yet.
    """
    query = (
        sa.select(drift_results)
        .where(drift_results.c.project == project)
        .order_by(drift_results.c.at.desc(), drift_results.c.id.desc())
        .limit(1)
    )
    with engine(db_url).connect() as conn:
        row = conn.execute(query).mappings().first()
    if row is None:
        return None
    details: dict[str, dict[str, Any]] = json.loads(row["features"])
    at: datetime = row["at"]
    if at.tzinfo is None:  # SQLite keeps no zone; we always write UTC
        at = at.replace(tzinfo=UTC)
    return {
        "id": int(row["id"]),
        "project": row["project"],
        "share": float(row["share"]),
        "detected": bool(row["detected"]),
        "features": {name: float(f["score"]) for name, f in details.items()},
        "drifted_features": [name for name, f in details.items() if f.get("drifted")],
        "at": at.isoformat(),
        "model_version": row["model_version"],
        "reference_hash": row["reference_hash"],
        "current_rows": int(row["current_rows"]),
        "report_path": row["report_path"],
    }
