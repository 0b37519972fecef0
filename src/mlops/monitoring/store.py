"""Drift results in SQL (any SQLAlchemy URL; the prediction log's database by default).

Append-only by use: ``record_drift`` adds a row per check, ``latest_drift`` reads the newest one.
This module never imports Evidently, so the service can export the latest scores cheaply.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

if TYPE_CHECKING:
    from mlops.monitoring.drift import DriftResult

metadata = sa.MetaData()
drift_results = sa.Table(
    "drift_results",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("project", sa.String(100), nullable=False, index=True),
    sa.Column("model_version", sa.String(50), nullable=False, default=""),
    sa.Column("reference_hash", sa.String(128), nullable=False, default=""),
    sa.Column("reference_rows", sa.Integer, nullable=False, default=0),
    sa.Column("current_rows", sa.Integer, nullable=False),
    sa.Column("share", sa.Float, nullable=False),
    sa.Column("threshold_share", sa.Float, nullable=False),
    sa.Column("detected", sa.Boolean, nullable=False),
    sa.Column("features", sa.Text, nullable=False),  # JSON: name -> {score, drifted, method, threshold}
    sa.Column("report_path", sa.Text, nullable=False, default=""),
)


@lru_cache(maxsize=8)
def _engine(db_url: str) -> sa.Engine:
    return sa.create_engine(db_url, future=True, pool_pre_ping=True)


def record_drift(
    db_url: str,
    project: str,
    result: DriftResult,
    *,
    model_version: str = "",
    reference_hash: str = "",
    report_path: str = "",
    at: datetime | None = None,
) -> int:
    """Store one drift check; returns its id. Creates the table on first use."""
    engine = _engine(db_url)
    metadata.create_all(engine, tables=[drift_results], checkfirst=True)
    features = {
        name: {"score": f.score, "drifted": f.drifted, "method": f.method, "threshold": f.threshold}
        for name, f in result.features.items()
    }
    row = {
        "at": at or datetime.now(UTC),
        "project": project,
        "model_version": str(model_version),
        "reference_hash": reference_hash,
        "reference_rows": int(result.reference_rows),
        "current_rows": int(result.current_rows),
        "share": float(result.share),
        "threshold_share": float(result.threshold_share),
        "detected": bool(result.detected),
        "features": json.dumps(features, sort_keys=True),
        "report_path": str(report_path),
    }
    with engine.begin() as conn:
        inserted = conn.execute(drift_results.insert().values(**row))
        key = inserted.inserted_primary_key
        return int(key[0]) if key else 0


def latest_drift(db_url: str, project: str) -> dict[str, Any] | None:
    """The newest drift check of ``project``, or None when there is none (or no table yet).

    ``{"share": float, "detected": bool, "features": {name: score}, "at": iso, "drifted": [names],
    "model_version", "reference_hash", "current_rows", "reference_rows", "threshold_share",
    "report_path", "id"}``.
    """
    engine = _engine(db_url)
    if not sa.inspect(engine).has_table(drift_results.name):
        return None
    query = (
        sa.select(drift_results)
        .where(drift_results.c.project == project)
        .order_by(drift_results.c.at.desc(), drift_results.c.id.desc())
        .limit(1)
    )
    with engine.connect() as conn:
        row = conn.execute(query).mappings().first()
    if row is None:
        return None
    detail: dict[str, dict[str, Any]] = json.loads(row["features"])
    at = row["at"]
    if at.tzinfo is None:  # SQLite drops the zone; we always store UTC
        at = at.replace(tzinfo=UTC)
    return {
        "id": int(row["id"]),
        "share": float(row["share"]),
        "detected": bool(row["detected"]),
        "features": {name: float(d["score"]) for name, d in detail.items()},
        "drifted": sorted(name for name, d in detail.items() if d.get("drifted")),
        "at": at.isoformat(),
        "model_version": row["model_version"],
        "reference_hash": row["reference_hash"],
        "reference_rows": int(row["reference_rows"]),
        "current_rows": int(row["current_rows"]),
        "threshold_share": float(row["threshold_share"]),
        "report_path": row["report_path"],
    }
