"""Which versions held an alias, replayed from the audit log: what `mlops rollback` goes back to."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops.errors import PromotionRefused
from mlops.stores.audit import AuditLog

if TYPE_CHECKING:
    from mlops.registry import Registry


def alias_history(reg: Registry, alias: str) -> list[str]:
    """Versions that held ``alias``, oldest first, replaying promotions (push) and rollbacks (pop)."""
    stack: list[str] = []
    for event in AuditLog.for_settings(reg.settings).history(model_name=reg.name):
        if event.alias != alias or event.to_version is None:
            continue
        if event.action == "rollback" and event.decision == "promoted":
            if stack:
                stack.pop()
        elif event.decision == "promoted":
            stack.append(event.to_version)
    return stack


def previous(reg: Registry, alias: str) -> str:
    """The version that held ``alias`` before its current holder."""
    stack = alias_history(reg, alias)
    current = reg.alias_version(alias)
    if current is None:
        raise PromotionRefused(f"{reg.name!r} has no {alias!r} version to roll back from")
    if len(stack) < 2 or stack[-1] != current:
        raise PromotionRefused(
            f"no earlier {alias!r} version of {reg.name!r} is recorded in the audit log",
            hint="promote an explicit version with `mlops promote VERSION --to production --reason ...`",
        )
    return stack[-2]
