"""Carry out a decision and keep its record: move the alias, tag the version, append the audit row,
refresh the model card. Every alias move goes through ``move``.

MLflow has no compare-and-set on aliases, and its write cannot share a transaction with the audit
row. So a move holds the alias lock of the control database (``stores/locks.py``) around
re-read → intent → MLflow write → audit → intent done: a second promotion of the same alias waits,
then re-reads a changed alias and is refused (audited). The intent row, made durable before the
MLflow write, is what a crash leaves behind; ``reconcile_intents`` (run at the start of every move)
turns it into the missing audit row when the alias did move, or marks it abandoned when it did not.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn

import sqlalchemy as sa

from mlops.errors import AliasConflict, MlopsError
from mlops.settings import mask_url
from mlops.stores.audit import AuditEvent, AuditLog, is_outage
from mlops.stores.locks import AliasLock, alias_lock
from mlops.stores.tables import alias_intents

if TYPE_CHECKING:
    from mlops.governance.decision import Decision
    from mlops.registry import Registry

logger = logging.getLogger(__name__)

# A pending intent younger than this may belong to a live move (SQLite lets another writer in for a
# moment while the intent is committed): left alone. Older ones, and all of them under the Postgres
# lock (held for the whole move), are the trace of a crash.
STALE_INTENT_S = 60.0
AUDIT_HEAD_TAG = "audit.head"


def audit_log(reg: Registry) -> AuditLog:
    return AuditLog.for_settings(reg.settings)


def _version_tags(
    reg: Registry, version: str, alias: str, decision: Decision, from_version: str | None
) -> datetime:
    at = datetime.now(UTC)
    reg.tag_version(
        version,
        {
            "promotion.outcome": decision.outcome,
            "promotion.reason": decision.reason,
            "promotion.alias": alias,
            "promotion.by": reg.settings.who,
            "promotion.at": at.isoformat(),
            "promotion.from_version": from_version or "",
            "promotion.scores": {
                "challenger": decision.challenger_score,
                "champion": decision.champion_score,
            },
            **decision.tags(),  # the statistical evidence: test, interval, estimate, resamples, rows
        },
    )
    return at


def _event(
    reg: Registry,
    *,
    version: str,
    alias: str,
    decision: str,
    reason: str,
    from_version: str | None,
    action: str,
    details: dict[str, Any],
    at: datetime | None = None,
) -> AuditEvent:
    return AuditEvent(
        action=action,
        project=reg.project,
        model_name=reg.name,
        decision=decision,
        reason=reason,
        actor=reg.settings.who,
        alias=alias,
        from_version=from_version,
        to_version=version,
        details=details,
        at=at or datetime.now(UTC),
    )


def _after_audit(reg: Registry, event: AuditEvent, version: str | None) -> None:
    """The chain's head into the registered model's tags (best-effort: an external copy of the head
    that ``mlops audit verify`` compares), then the model card."""
    from mlops.governance.model_card import refresh

    if event.seq is not None and event.hash:
        try:
            reg.tag_model(AUDIT_HEAD_TAG, f"{event.seq}:{event.hash}")
        except Exception as exc:  # the anchor in the database is the real check; this is a copy
            logger.warning("audit head not tagged on %s: %s", reg.name, exc)
    if version:
        refresh(reg, version)


def record_decision(
    reg: Registry,
    *,
    version: str,
    alias: str,
    decision: Decision,
    from_version: str | None,
    action: str = "promote",
    details: dict[str, Any] | None = None,
    conn: sa.Connection | None = None,
) -> AuditEvent:
    """Tag ``version`` with the decision, append it to the audit log, then refresh its model card.
    ``conn``: the alias lock's transaction, when called under it (the card is then left to the caller)."""
    at = _version_tags(reg, version, alias, decision, from_version)
    event = audit_log(reg).record(
        _event(
            reg,
            version=version,
            alias=alias,
            decision=decision.outcome,
            reason=decision.reason,
            from_version=from_version,
            action=action,
            details={**decision.as_dict(), **(details or {})},
            at=at,
        ),
        conn=conn,
    )
    if conn is None:
        _after_audit(reg, event, version)
    return event


def move(
    reg: Registry,
    *,
    alias: str,
    expected: str | None,
    new: str,
    decision: Decision,
    action: str = "promote",
    details: dict[str, Any] | None = None,
    after_reread: Callable[[], None] | None = None,
) -> AuditEvent:
    """Move ``alias`` from ``expected`` to ``new`` and audit it, serialized with every other move of
    that alias; refused (``AliasConflict``, audited as ``refused``) when the alias is not ``expected``.
    Score before calling: the lock is held only for re-read → write → audit.

    ``after_reread``: a test hook, called under the lock right after the re-read (to force an
    interleaving with a concurrent move)."""
    log = audit_log(reg)
    written = False  # the MLflow alias write went through
    refused: AuditEvent | None = None
    try:
        log.replay_spool()  # the spool is written before the lock: under it, one transaction only
        with alias_lock(log.engine, f"{reg.name}@{alias}") as lock:
            _reconcile_locked(reg, log, lock, alias)
            current = reg.alias_version(alias)
            if after_reread is not None:
                after_reread()
            intent_id = None
            if current == expected:
                intent_id = _open_intent(reg, lock, alias, expected, new)
                if lock.released_meanwhile:  # SQLite: re-taken the lock; decide on what is there now
                    current = reg.alias_version(alias)
            if current != expected:
                refused = log.record(
                    _event(
                        reg,
                        version=new,
                        alias=alias,
                        decision="refused",
                        reason=f"alias {alias!r} moved from {expected} to {current} meanwhile; refused",
                        from_version=expected,
                        action=action,
                        details={**decision.as_dict(), **(details or {}), "current": current},
                    ),
                    conn=lock.conn,
                )
                if intent_id is not None:
                    _close_intent(lock.conn, intent_id, "abandoned", refused.seq)
            else:
                reg.move_alias(alias, expected=expected, new=new)
                written = True
                event = record_decision(
                    reg,
                    version=new,
                    alias=alias,
                    decision=decision,
                    from_version=expected,
                    action=action,
                    details=details,
                    conn=lock.conn,
                )
                assert intent_id is not None
                _close_intent(lock.conn, intent_id, "done", event.seq)
    except Exception as exc:
        if not is_outage(exc):
            raise
        _control_db_down(reg, log, alias=alias, expected=expected, new=new, action=action, written=written)
    if refused is not None:
        _after_audit(reg, refused, None)
        raise AliasConflict(
            f"alias {alias!r} of {reg.name!r} moved from {expected} to {current} meanwhile; refused",
            hint="someone else promoted meanwhile; re-run the decision",
        )
    _after_audit(reg, event, new)
    return event


def _control_db_down(
    reg: Registry, log: AuditLog, *, alias: str, expected: str | None, new: str, action: str, written: bool
) -> NoReturn:
    """The control database failed mid-move: fail closed with a clear, retryable error. Before the
    MLflow write nothing moved (the refusal is spooled); after it, the intent row is there and the
    next move (or ``reconcile_intents``) writes the audit row."""
    where = mask_url(log.url)
    if written:
        raise MlopsError(
            f"alias {alias!r} of {reg.name!r} moved to {new}, but the control database ({where}) failed "
            "before its audit row: the next move reconciles it",
            hint="run `mlops audit` once the database is back",
        ) from None
    log.record(
        _event(
            reg,
            version=new,
            alias=alias,
            decision="refused",
            reason=f"the control database ({where}) is unreachable: alias not moved",
            from_version=expected,
            action=action,
            details={"cause": "control database unreachable"},
        )
    )  # spooled: the store is down
    raise MlopsError(
        f"the control database ({where}) is unreachable: alias {alias!r} of {reg.name!r} not moved",
        hint="retry when it is back (MLOPS_AUDIT_DB_URL); the refusal is spooled and written then",
    ) from None


def apply(
    reg: Registry,
    decision: Decision,
    *,
    version: str,
    alias: str,
    expected: str | None,
    after_reread: Callable[[], None] | None = None,
) -> AuditEvent:
    """Carry out a decision: move ``alias`` (or give the version ``challenger``) and audit it."""
    if decision.outcome == "promoted":
        return move(
            reg, alias=alias, expected=expected, new=version, decision=decision, after_reread=after_reread
        )
    if decision.outcome == "kept":
        reg.set_alias("challenger", version)
    return record_decision(reg, version=version, alias=alias, decision=decision, from_version=expected)


# ----- intents -----
def _open_intent(reg: Registry, lock: AliasLock, alias: str, expected: str | None, new: str) -> int:
    result = lock.durable(
        alias_intents.insert().values(
            at=datetime.now(UTC),
            model_name=reg.name,
            alias=alias,
            expected=expected,
            new=new,
            state="pending",
            actor=reg.settings.who,
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _close_intent(conn: sa.Connection, intent_id: int, state: str, seq: int | None) -> None:
    conn.execute(
        alias_intents.update().where(alias_intents.c.id == intent_id).values(state=state, audit_seq=seq)
    )


def _reconcile_locked(reg: Registry, log: AuditLog, lock: AliasLock, alias: str) -> list[AuditEvent]:
    conn = lock.conn
    query = sa.select(alias_intents).where(
        alias_intents.c.model_name == reg.name,
        alias_intents.c.alias == alias,
        alias_intents.c.state == "pending",
    )
    if conn.dialect.name != "postgresql":
        query = query.where(alias_intents.c.at < datetime.now(UTC) - timedelta(seconds=STALE_INTENT_S))
    events = []
    for intent in conn.execute(query.order_by(alias_intents.c.id)).all():
        current = reg.alias_version(alias)
        # moved: the alias is there now, or a later move found it there (it re-read intent.new)
        later = conn.execute(
            sa.select(alias_intents.c.id).where(
                alias_intents.c.model_name == reg.name,
                alias_intents.c.alias == alias,
                alias_intents.c.id > intent.id,
                alias_intents.c.expected == intent.new,
                alias_intents.c.state == "done",
            )
        ).first()
        moved = current == intent.new or later is not None
        event = log.record(
            _event(
                reg,
                version=intent.new,
                alias=alias,
                decision="promoted" if moved else "abandoned",
                reason=(
                    "reconciled after an interrupted promotion"
                    if moved
                    else f"an interrupted promotion left the alias at {current}: intent abandoned"
                ),
                from_version=intent.expected,
                action="promote",
                details={"intent": intent.id, "intent_actor": intent.actor, "intent_at": str(intent.at)},
            ),
            conn=conn,
        )
        _close_intent(conn, intent.id, "done" if moved else "abandoned", event.seq)
        events.append(event)
    return events


def reconcile_intents(reg: Registry) -> list[AuditEvent]:
    """Close every interrupted alias move of ``reg``'s model (see the module docstring), each alias
    under its lock; the audit rows written."""
    log = audit_log(reg)
    log.replay_spool()
    with log.engine.connect() as conn:
        aliases = conn.execute(
            sa.select(alias_intents.c.alias)
            .where(alias_intents.c.model_name == reg.name, alias_intents.c.state == "pending")
            .distinct()
        ).scalars()
        pending = sorted(aliases)
    events: list[AuditEvent] = []
    for alias in pending:
        with alias_lock(log.engine, f"{reg.name}@{alias}") as lock:
            events += _reconcile_locked(reg, log, lock, alias)
    for event in events:
        _after_audit(reg, event, None)
    return events


def external_heads(reg: Registry) -> list[str]:
    """The audit head recorded on the registered model (``audit.head``), if the registry has one."""
    try:
        tags = reg.client.get_registered_model(reg.name).tags or {}
    except Exception:  # best-effort: no model yet, or the registry is down; verify needs only the anchor
        return []
    head = tags.get(AUDIT_HEAD_TAG)
    return [head] if head else []
