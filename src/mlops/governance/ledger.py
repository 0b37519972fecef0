"""Carry out a decision and keep its record: move the alias through the registry (compare-and-set),
tag the version, append the audit row, refresh the model card. Every alias move goes through here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlops.stores.audit import AuditEvent, AuditLog

if TYPE_CHECKING:
    from mlops.governance.decision import Decision
    from mlops.registry import Registry


def record_decision(
    reg: Registry,
    *,
    version: str,
    alias: str,
    decision: Decision,
    from_version: str | None,
    action: str = "promote",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Tag ``version`` with the decision, append it to the audit log, then refresh its model card."""
    from mlops.governance.model_card import refresh

    settings = reg.settings
    at = datetime.now(UTC)
    who = settings.who
    reg.tag_version(
        version,
        {
            "promotion.outcome": decision.outcome,
            "promotion.reason": decision.reason,
            "promotion.alias": alias,
            "promotion.by": who,
            "promotion.at": at.isoformat(),
            "promotion.from_version": from_version or "",
            "promotion.scores": {
                "challenger": decision.challenger_score,
                "champion": decision.champion_score,
            },
        },
    )
    event = AuditLog(settings.audit_url).record(
        AuditEvent(
            action=action,
            project=reg.project,
            model_name=reg.name,
            decision=decision.outcome,
            reason=decision.reason,
            actor=who,
            alias=alias,
            from_version=from_version,
            to_version=version,
            details={**decision.as_dict(), **(details or {})},
            at=at,
        )
    )
    refresh(reg, version)
    return event


def apply(reg: Registry, decision: Decision, *, version: str, alias: str, expected: str | None) -> AuditEvent:
    """Carry out a decision: move ``alias`` (or give the version ``challenger``) and audit it."""
    if decision.outcome == "promoted":
        reg.move_alias(alias, expected=expected, new=version)
    elif decision.outcome == "kept":
        reg.set_alias("challenger", version)
    return record_decision(reg, version=version, alias=alias, decision=decision, from_version=expected)
