"""Health data in the prediction log: the retention purge, erasure on request, and the subject hash.

The readmission use case logs patient features with every prediction, so the log is personal data:

- ``purge_expired`` deletes what is older than ``settings.retention_days``: prediction rows (by
  ``predictions.at``, indexed), every scoring and label of those requests, then scorings and labels
  older than the cutoff whose prediction is already gone. Rows go in batches, one transaction per
  batch, so a purge of months holds no lock for long and a crash keeps what committed.
- ``erase`` deletes every row of the named requests, or of one subject: clients send
  ``X-Subject-Key`` (a patient number) with ``/predict``; the service stores only its keyed hash
  (``subject_hash``), so the key itself is never written anywhere and ``erase --subject KEY``
  finds the rows by hashing it again. A batch request's rows are ``ID-0`` .. ``ID-(N-1)``: erasing
  ``ID`` erases all of them (erasing ``ID-3`` only that row).

Both are audited (``stores.audit``): cutoff and counts for a purge; request ids, the subject's hash
and counts for an erasure, never an input value or the raw key. The audit chain is not touched:
its rows hold governance decisions (versions, metrics, intervals, run ids), not prediction inputs,
so nothing in it needs erasing and ``mlops audit verify`` keeps passing.

Drift results (``drift_results``) are aggregates (per-feature scores) and are kept.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from mlops.errors import Unavailable, UsageError
from mlops.stores import chain
from mlops.stores.audit import AuditEvent, AuditLog, is_outage
from mlops.stores.engine import create_engine
from mlops.stores.migrate import ensure_schema
from mlops.stores.spool import SUFFIX
from mlops.stores.tables import feedback, predictions, scorings

if TYPE_CHECKING:
    from mlops.settings import Settings

logger = logging.getLogger(__name__)

BATCH_ROWS = 5_000  # rows per delete transaction: short locks, bounded statements
MAX_SUBJECT_KEY = 256  # characters of an X-Subject-Key header
SUBJECT_HEADER = "X-Subject-Key"
_SUBJECT_CONTEXT = b"mlops subject hash v1"  # domain separation from the audit anchor's HMAC
AUDIT_SCOPE = "prediction-log"  # the audit rows' project: the log spans every use case


# ----- the subject hash -----
def subject_secret(settings: Settings) -> bytes:
    """The key of subject hashes: derived from the audit HMAC key (``MLOPS_AUDIT_HMAC_KEY``, else the
    development key file beside the control database), so every worker and the CLI agree without
    another secret to distribute, and a subject hash can never pass for an anchor signature. The
    audit key is already one that must not change (the anchor is verified with it)."""
    audit_key = chain.key_for(settings.audit_url, settings)
    return hmac.new(audit_key, _SUBJECT_CONTEXT, hashlib.sha256).digest()


def normalize_subject(key: str) -> str:
    """The subject key as hashed: surrounding blanks removed; refused when empty or too long."""
    value = key.strip()
    if not value:
        raise UsageError(f"empty {SUBJECT_HEADER}", hint="send the subject's key, e.g. a patient number")
    if len(value) > MAX_SUBJECT_KEY:
        raise UsageError(
            f"{SUBJECT_HEADER} longer than {MAX_SUBJECT_KEY} characters",
            hint="send an identifier (a patient number), not a document",
        )
    return value


def hash_subject(secret: bytes, key: str) -> str:
    """HMAC-SHA256 of the normalized key: 64 hex digits (``predictions.subject_hash``)."""
    return hmac.new(secret, normalize_subject(key).encode(), hashlib.sha256).hexdigest()


# ----- reports -----
@dataclass
class PurgeReport:
    cutoff: str  # ISO 8601 UTC: rows strictly older were deleted
    retention_days: float
    predictions: int = 0
    scorings: int = 0
    feedback: int = 0
    batches: int = 0
    audit_seq: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ErasureReport:
    request_ids: list[str] = field(default_factory=list)
    subject_hash: str | None = None
    predictions: int = 0
    scorings: int = 0
    feedback: int = 0
    still_spooled: int = 0  # spool segments that still hold rows of these requests (not yet shipped)
    audit_seq: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----- the purge -----
def purge_expired(
    settings: Settings, *, actor: str, now: datetime | None = None, batch_rows: int = BATCH_ROWS
) -> PurgeReport:
    """Delete prediction rows, scorings and labels older than ``settings.retention_days`` (rows
    exactly at the cutoff stay) and audit the purge, with its counts and cutoff, even when it
    deleted nothing (the audit then shows the schedule ran)."""
    now = now or datetime.now(UTC)
    now = now if now.tzinfo else now.replace(tzinfo=UTC)
    cutoff = now.astimezone(UTC) - timedelta(days=settings.retention_days)
    report = PurgeReport(cutoff=cutoff.isoformat(), retention_days=settings.retention_days)
    log = _audit_log(settings)
    engine = _engine(settings)
    try:
        while True:  # expired predictions, with their scorings and labels
            with engine.begin() as conn:
                ids = list(
                    conn.execute(
                        sa.select(predictions.c.request_id)
                        .where(predictions.c.at < cutoff)
                        .order_by(predictions.c.at)
                        .limit(batch_rows)
                    ).scalars()
                )
                if not ids:
                    break
                counts = _delete_requests(conn, ids)
            report.batches += 1
            report.predictions += counts[0]
            report.scorings += counts[1]
            report.feedback += counts[2]
        # what an earlier purge, or an erasure, left: scorings and labels whose prediction is gone
        report.scorings += _delete_older(engine, scorings, cutoff, batch_rows, report)
        report.feedback += _delete_older(engine, feedback, cutoff, batch_rows, report)
    except BaseException:
        log.dispose()
        raise
    finally:
        engine.dispose()
    event = _audit(
        log,
        AuditEvent(
            action="purge",
            project=AUDIT_SCOPE,
            model_name="",
            decision="purged",
            reason=f"retention: rows older than {settings.retention_days:g} days",
            actor=actor,
            details={k: v for k, v in report.as_dict().items() if k != "audit_seq"},
        ),
    )
    report.audit_seq = event.seq
    logger.info(
        "purged %d predictions, %d scorings, %d labels older than %s",
        report.predictions,
        report.scorings,
        report.feedback,
        report.cutoff,
    )
    return report


def _delete_requests(conn: sa.Connection, ids: Sequence[str]) -> tuple[int, int, int]:
    """Delete the rows of exactly these request ids from the three tables: (predictions, scorings,
    labels) deleted."""
    done = []
    for table in (predictions, scorings, feedback):
        done.append(max(conn.execute(table.delete().where(table.c.request_id.in_(ids))).rowcount, 0))
    return done[0], done[1], done[2]


def _delete_older(
    engine: sa.Engine, table: sa.Table, cutoff: datetime, batch_rows: int, report: PurgeReport
) -> int:
    deleted = 0
    while True:
        with engine.begin() as conn:
            ids = list(
                conn.execute(sa.select(table.c.id).where(table.c.at < cutoff).limit(batch_rows)).scalars()
            )
            if not ids:
                return deleted
            deleted += max(conn.execute(table.delete().where(table.c.id.in_(ids))).rowcount, 0)
        report.batches += 1


# ----- erasure -----
def erase(
    settings: Settings,
    *,
    request_ids: Iterable[str] = (),
    subject_key: str | None = None,
    actor: str,
    reason: str,
) -> ErasureReport:
    """Delete every prediction row, scoring and label of ``request_ids`` (a batch request's id takes
    its rows ``ID-N`` along) and of the subject whose key is ``subject_key``; audit it with the ids,
    the subject's hash and the counts. ``reason`` is required: an erasure is a governance act."""
    wanted = sorted({r.strip() for r in request_ids if r.strip()})
    if not wanted and subject_key is None:
        raise UsageError("nothing to erase", hint="name request ids, or --subject KEY")
    if not reason.strip():
        raise UsageError("an erasure needs a reason", hint='e.g. --reason "erasure request #123"')
    for request_id in wanted:
        if len(request_id) > 64 or not request_id.isprintable():
            raise UsageError(
                f"not a request id: {request_id[:80]!r}", hint="the X-Request-Id of a response (32 hex)"
            )
    digest = None if subject_key is None else hash_subject(subject_secret(settings), subject_key)
    report = ErasureReport(request_ids=wanted, subject_hash=digest)
    log = _audit_log(settings)
    engine = _engine(settings)
    try:
        with engine.begin() as conn:  # one transaction: erased completely or not at all
            ids = {r for t in (predictions, scorings, feedback) for r in _rows_of_requests(conn, t, wanted)}
            if digest is not None:
                ids |= set(
                    conn.execute(
                        sa.select(predictions.c.request_id).where(predictions.c.subject_hash == digest)
                    ).scalars()
                )
            found = sorted(ids)
            for start in range(0, len(found), BATCH_ROWS):
                counts = _delete_requests(conn, found[start : start + BATCH_ROWS])
                report.predictions += counts[0]
                report.scorings += counts[1]
                report.feedback += counts[2]
    except BaseException:
        log.dispose()
        raise
    finally:
        engine.dispose()
    report.still_spooled = _spooled(settings.prediction_spool_dir, [*wanted, *([digest] if digest else [])])
    details = {k: v for k, v in report.as_dict().items() if k != "audit_seq"}
    event = _audit(
        log,
        AuditEvent(
            action="erase",
            project=AUDIT_SCOPE,
            model_name="",
            decision="erased",
            reason=reason.strip(),
            actor=actor,
            details=details,
        ),
    )
    report.audit_seq = event.seq
    return report


def _rows_of_requests(conn: sa.Connection, table: sa.Table, wanted: Sequence[str]) -> list[str]:
    """Request ids in ``table`` that belong to these requests: the id itself, and a batch request's
    ``ID-N`` rows (N digits). One query per 500 ids (prefix ``LIKE``s), then an exact check here:
    SQLite's ``LIKE`` ignores case."""
    found: list[str] = []
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        prefixes = [table.c.request_id.like(f"{_escape(r)}-%", escape="\\") for r in chunk]
        query = sa.select(table.c.request_id).where(sa.or_(table.c.request_id.in_(chunk), *prefixes))
        exact, rows = set(chunk), conn.execute(query).scalars()
        for row in rows:
            base, _, n = row.rpartition("-")
            if row in exact or (n.isdigit() and base in exact):
                found.append(row)
    return found


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _spooled(root: Path, needles: Sequence[str]) -> int:
    """Spool segments (rows accepted by a service but not yet in the database) that mention one of
    ``needles``: those rows would reach the database after the erasure, so the caller runs it again
    once the shipper drained them."""
    if not needles or not root.exists():
        return 0
    marks = [f'"{n}'.encode() for n in needles]  # a JSON string starting with the id or the hash
    hits = 0
    for folder, _, files in os.walk(root):
        for name in files:
            if not name.endswith(SUFFIX):
                continue
            try:
                data = Path(folder, name).read_bytes()
            except FileNotFoundError:  # shipped meanwhile
                continue
            hits += any(mark in data for mark in marks)
    return hits


# ----- shared -----
def _engine(settings: Settings) -> sa.Engine:
    engine = create_engine(settings.prediction_log_db_url)
    try:
        ensure_schema(engine, "predictions")
    except Exception:
        engine.dispose()
        raise
    return engine


def _audit_log(settings: Settings) -> AuditLog:
    """The audit log, checked writable BEFORE anything is deleted, and without a local spool: a
    deletion must be audited in the chain itself (a spool in a job's scratch folder dies with it),
    so an unreachable control database or a missing key refuses the purge or erasure up front."""
    log = AuditLog(settings.audit_url, spool_dir=None, settings=settings)
    try:
        log.key  # noqa: B018 - no key outside development: refused here, nothing deleted
        log.head()
    except Exception as exc:
        log.dispose()
        if is_outage(exc):
            raise Unavailable(
                f"the control database is unreachable: {settings.redact(str(exc)).splitlines()[0]}",
                hint="nothing was deleted; retry once the audit log can record it",
            ) from None
        raise
    return log


def _audit(log: AuditLog, event: AuditEvent) -> AuditEvent:
    try:
        return log.record(event)
    finally:
        log.dispose()
