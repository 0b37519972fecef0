"""Append-only, tamper-evident audit log of every governance decision, in the control database.

The log offers ``record``, ``history`` and ``verify`` and nothing that updates or deletes; the
database refuses UPDATE and DELETE itself (and TRUNCATE on Postgres), by triggers that a migration
installs (``migrations/versions/control``). Triggers can be dropped by whoever owns the database, so
each row is also chained (``stores/chain.py``): a gap-free ``seq``, the previous row's hash and its
own; the head is anchored in ``audit_anchor`` with an HMAC. ``verify`` recomputes all of it and names
the first broken row. Appends serialize on the chain lock (``stores/locks.py``) so concurrent writers
cannot fork the chain.

When the database is unreachable, ``record`` spools the event to a local JSON-lines file instead of
losing it (a refusal must be audited even when the audit store is the thing that is down); the next
``record``, ``history`` or ``verify`` writes the spool first, in order.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from mlops.errors import Unavailable
from mlops.stores import chain
from mlops.stores.engine import create_engine
from mlops.stores.locks import pg_xact_lock, transaction_control, write_transaction
from mlops.stores.migrate import ensure_schema
from mlops.stores.tables import audit_anchor, audit_log

if TYPE_CHECKING:
    from mlops.settings import Settings

logger = logging.getLogger(__name__)

_NOT_CONTENT = {"id", "spooled", "seq", "prev_hash", "hash"}


@dataclass
class AuditEvent:
    action: str  # promote | rollback | train | pipeline
    project: str
    model_name: str
    decision: str  # promoted | kept | rejected | refused | abandoned | succeeded | failed
    reason: str
    actor: str
    alias: str | None = None
    from_version: str | None = None
    to_version: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))
    id: int | None = None
    seq: int | None = None
    prev_hash: str | None = None
    hash: str | None = None
    spooled: bool = False  # not a column: this record is in the local spool, not yet in the database

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["at"] = self.at.isoformat()
        return d


@dataclass
class VerifyReport:
    ok: bool
    rows: int
    head_seq: int
    head_hash: str
    broken_seq: int | None = None
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def is_outage(exc: BaseException) -> bool:
    """The store is unreachable (down, refusing, timing out, read-only), as opposed to a wrong request."""
    if isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError | sa.exc.TimeoutError):
        return True
    return isinstance(exc, sa.exc.DBAPIError) and bool(exc.connection_invalidated)


def outage_error(exc: BaseException, settings: Settings, *, hint: str) -> Unavailable | None:
    """``exc`` as ``Unavailable`` (exit 75, its first line with every secret masked) when it is a
    store outage; None when it is not one (the caller re-raises it)."""
    if not is_outage(exc):
        return None
    cause = settings.redact(str(getattr(exc, "orig", None) or exc)).strip().splitlines()[0]
    return Unavailable(f"a store cannot be reached: {cause}", hint=hint)


class AuditLog:
    def __init__(self, url: str, *, spool_dir: Path | None = None, settings: Settings | None = None) -> None:
        self.url = url
        self.spool_dir = spool_dir
        self._settings = settings
        self._engine: sa.Engine | None = None
        self._key: bytes | None = None

    @classmethod
    def for_settings(cls, settings: Settings) -> AuditLog:
        """The log of ``settings``, spooling to ``<state dir>/audit-spool`` during an outage."""
        return cls(settings.audit_url, spool_dir=settings.state_dir / "audit-spool", settings=settings)

    @property
    def engine(self) -> sa.Engine:
        if self._engine is None:
            engine = transaction_control(create_engine(self.url))
            try:
                ensure_schema(engine, "control")
            except Exception:
                engine.dispose()
                raise
            self._engine = engine
        return self._engine

    @property
    def key(self) -> bytes:
        if self._key is None:
            self._key = chain.key_for(self.url, self._settings)
        return self._key

    # ----- writing -----
    def record(self, event: AuditEvent, *, conn: sa.Connection | None = None) -> AuditEvent:
        """Append ``event``. With ``conn`` (a write transaction the caller holds, e.g. an alias lock),
        inside it and without spooling: the caller's transaction decides. Without, in its own
        transaction, spooled locally when the database is unreachable."""
        key = self.key  # no key outside development: refused, never spooled
        if conn is not None:
            self._append(conn, [event], key)
            return event
        try:
            self.replay_spool()
            with write_transaction(self.engine) as own:
                self._append(own, [event], key)
        except Exception as exc:
            if self.spool_dir is None or not is_outage(exc):
                raise
            self._spool(event, exc)
        return event

    def _append(self, conn: sa.Connection, events: Sequence[AuditEvent], key: bytes) -> None:
        pg_xact_lock(conn, chain.PG_CHAIN_LOCK)
        head = conn.execute(
            sa.select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
        ).first()
        seq, prev = (int(head.seq), str(head.hash)) if head else (0, chain.GENESIS)
        for event in events:
            seq += 1
            row = {k: v for k, v in asdict(event).items() if k not in _NOT_CONTENT}
            row["at"] = event.at.astimezone(UTC) if event.at.tzinfo else event.at.replace(tzinfo=UTC)
            row["details"] = json.dumps(event.details, default=str, sort_keys=True)
            row |= {"seq": seq, "prev_hash": prev}
            row["hash"] = chain.row_hash(row)
            result = conn.execute(audit_log.insert().values(**row))
            event.id = int(result.inserted_primary_key[0]) if result.inserted_primary_key else None
            event.seq, event.prev_hash, event.hash, event.spooled = seq, prev, row["hash"], False
            event.details = json.loads(row["details"])
            prev = row["hash"]
        anchor = {
            "seq": seq,
            "hash": prev,
            "hmac": chain.anchor_hmac(key, seq, prev),
            "at": datetime.now(UTC),
        }
        updated = conn.execute(
            audit_anchor.update().where(audit_anchor.c.chain == chain.CHAIN).values(**anchor)
        )
        if updated.rowcount == 0:
            conn.execute(audit_anchor.insert().values(chain=chain.CHAIN, **anchor))

    def head(self) -> tuple[int, str]:
        """The chain's last ``(seq, hash)``; ``(0, GENESIS)`` for an empty log."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(audit_log.c.seq, audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
            ).first()
        return (int(row.seq), str(row.hash)) if row else (0, chain.GENESIS)

    # ----- the spool -----
    @property
    def spool_path(self) -> Path | None:
        if self.spool_dir is None:
            return None
        database = sa.engine.make_url(self.url).database or "memory"
        name = Path(database).stem if self.url.startswith("sqlite") else database
        return self.spool_dir / f"{name or 'audit'}.jsonl"

    @contextmanager
    def _spool_lock(self) -> Iterator[Path]:
        from filelock import FileLock

        path = self.spool_path
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{path}.lock", timeout=60):
            yield path

    def _spool(self, event: AuditEvent, exc: BaseException) -> None:
        line = event.as_dict()
        line["details"] = {
            **event.details,
            "spooled_at": datetime.now(UTC).isoformat(),
            "spool_id": uuid.uuid4().hex,
        }
        with self._spool_lock() as path, path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(line, default=str, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        event.spooled = True
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        logger.warning(
            "audit store unreachable (%s): %s %s spooled to %s", reason, event.action, event.decision, path
        )

    def replay_spool(self) -> int:
        """Write the spooled events, in order, then empty the spool; how many were written. A torn line
        (a crash mid-append) is skipped with a warning. An event already written (a crash between the
        commit and the truncation) is not written twice: its ``spool_id`` is in the log."""
        path = self.spool_path
        if path is None or not path.exists() or path.stat().st_size == 0:
            return 0
        with self._spool_lock() as path:
            events = list(_read_spool(path))
            if events:
                with write_transaction(self.engine) as conn:
                    fresh = [e for e in events if not _already_written(conn, e)]
                    if fresh:
                        self._append(conn, fresh, self.key)
            empty = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            empty.write_text("")
            empty.replace(path)  # atomic: a reader sees the old spool or none
        logger.info("audit spool replayed: %d events written to the audit log", len(events))
        return len(events)

    def _replay_quietly(self) -> None:
        try:
            self.replay_spool()
        except Exception as exc:
            if not is_outage(exc):
                raise
            logger.warning("audit spool not replayed: the audit store is unreachable")

    # ----- reading -----
    def history(
        self,
        *,
        project: str | None = None,
        model_name: str | None = None,
        limit: int | None = None,
        also_projects: Sequence[str] = (),
    ) -> list[AuditEvent]:
        """Events in chain order; ``also_projects``: events of these scopes too, whatever the other
        filters (the prediction log's purges and erasures, the state's backups and restores)."""
        self._replay_quietly()
        query = sa.select(audit_log).order_by(audit_log.c.seq)
        match: sa.ColumnElement[bool] = sa.true()
        if project:
            match = sa.and_(match, audit_log.c.project == project)
        if model_name:
            match = sa.and_(match, audit_log.c.model_name == model_name)
        if also_projects:
            match = sa.or_(match, audit_log.c.project.in_(list(also_projects)))
        query = query.where(match)
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

    def verify(self, external_heads: Iterable[str] = ()) -> VerifyReport:
        """Recompute the chain and check its anchor: the first broken row and why, or ok.

        ``external_heads``: ``"seq:hash"`` heads recorded elsewhere (the registered models' MLflow
        tag ``audit.head``); one AHEAD of the table means its tail was deleted. They are best-effort
        (a model's tag lags the shared log); the HMAC-signed anchor is the real check."""
        self._replay_quietly()
        wanted = {}
        for head in external_heads:
            seq_text, _, digest = head.partition(":")
            if seq_text.isdigit() and digest:
                wanted[int(seq_text)] = digest
        seen: dict[int, str] = {}
        with self._snapshot() as conn:  # rows and anchor from one snapshot: they agree
            anchor = conn.execute(sa.select(audit_anchor).where(audit_anchor.c.chain == chain.CHAIN)).first()
            rows = conn.execute(sa.select(audit_log).order_by(audit_log.c.seq)).mappings()
            count, seq, prev = 0, 0, chain.GENESIS

            def broken(at_seq: int, reason: str) -> VerifyReport:
                return VerifyReport(False, count, seq, prev, at_seq, reason)

            for row in rows:
                count += 1
                if row["seq"] != seq + 1:
                    return broken(seq + 1, f"gap: seq {seq + 1} missing (row deleted)")
                if row["prev_hash"] != prev:
                    return broken(row["seq"], f"prev_hash does not match seq {seq} (chain broken)")
                if chain.row_hash(dict(row)) != row["hash"]:
                    return broken(row["seq"], "hash mismatch (row edited)")
                seq, prev = int(row["seq"]), str(row["hash"])
                if seq in wanted:
                    seen[seq] = prev
        if count and anchor is None:
            return broken(seq, "anchor missing (tail deleted or chain rewritten)")
        if anchor is not None:
            if (int(anchor.seq), str(anchor.hash)) != (seq, prev):
                first = seq + 1 if anchor.seq > seq else min(int(anchor.seq), seq)
                return broken(first, "anchor mismatch (tail deleted or chain rewritten)")
            if anchor.hmac != chain.anchor_hmac(self.key, seq, prev):
                return broken(seq, "hmac invalid (anchor forged or wrong key)")
        for at_seq, digest in sorted(wanted.items()):
            if at_seq > seq:
                return broken(seq + 1, f"external head {at_seq} is ahead of the table (tail deleted)")
            if seen.get(at_seq) != digest:
                return broken(at_seq, f"external head {at_seq} does not match the row (chain rewritten)")
        return VerifyReport(True, count, seq, prev)

    @contextmanager
    def _snapshot(self) -> Iterator[sa.Connection]:
        """A read-only transaction that sees one state of the database, without blocking writers (nor
        needing write access: an auditor's read-only role can verify). Postgres: REPEATABLE READ;
        SQLite: a deferred transaction, whose first read fixes the WAL snapshot."""
        with self.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()


def _read_spool(path: Path) -> Iterator[AuditEvent]:
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            data["at"] = datetime.fromisoformat(data["at"])
            data.pop("spooled", None)
            yield AuditEvent(**{k: v for k, v in data.items() if k not in _NOT_CONTENT - {"spooled"}})
        except (ValueError, TypeError, KeyError) as exc:
            logger.warning("audit spool %s: line %d unreadable (%s): skipped (a torn write?)", path, n, exc)


def _already_written(conn: sa.Connection, event: AuditEvent) -> bool:
    spool_id = event.details.get("spool_id")
    if not spool_id:
        return False
    pattern = f'%"spool_id": "{spool_id}"%'
    return (
        conn.execute(sa.select(audit_log.c.id).where(audit_log.c.details.like(pattern)).limit(1)).first()
        is not None
    )
