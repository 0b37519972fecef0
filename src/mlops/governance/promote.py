"""Promotion use cases: automatic after training, manual with a reason, rollback. All audited."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops.errors import PromotionRefused
from mlops.governance.audit import AuditEvent
from mlops.governance.promotion import Decision, decide
from mlops.registry import Registry

if TYPE_CHECKING:
    import pandas as pd

    from mlops.projects.base import ProjectSpec
    from mlops.settings import Settings


def auto_promote(
    settings: Settings,
    spec: ProjectSpec,
    version: str,
    holdout: pd.DataFrame,
    challenger_metrics: dict[str, float],
    gate_reasons: list[str],
    registry: Registry | None = None,
) -> tuple[Decision, AuditEvent]:
    """Score the current champion on the challenger's holdout, decide, then compare-and-set the alias."""
    reg = registry or Registry(settings, spec.name)
    alias = spec.promotion_target
    champion = reg.alias_version(alias)
    champion_score = None
    if champion is not None and champion != version:
        champion_score = reg.score_on(spec, champion, holdout)[spec.primary_metric]
    decision = decide(
        metric=spec.primary_metric,
        challenger=challenger_metrics[spec.primary_metric],
        champion=champion_score,
        margin=settings.promotion_margin,
        gate_reasons=gate_reasons,
    )
    event = reg.apply(decision, version=version, alias=alias, expected=champion)
    return decision, event


def manual_promote(
    settings: Settings, spec: ProjectSpec, version: str, *, to: str, reason: str, approver: str | None = None
) -> AuditEvent:
    """Move ``to`` onto ``version`` by a person's decision; the version must have passed its gates."""
    if not reason.strip():
        raise PromotionRefused("a promotion needs a reason", hint="pass --reason 'why this version'")
    reg = Registry(settings, spec.name)
    info = reg.version(version)
    if info.tags.get("gates_passed") != "true":
        raise PromotionRefused(f"version {version} of {reg.name!r} did not pass its gates; refused")
    current = reg.alias_version(to)
    if current == version:
        raise PromotionRefused(f"version {version} already holds {to!r}")
    score = info.metrics.get(spec.primary_metric, float("nan"))
    decision = Decision(
        "promoted", f"manual: {reason}", spec.primary_metric, score, None, settings.promotion_margin
    )
    reg.move_alias(to, expected=current, new=version)
    return reg.record_decision(
        version=version,
        alias=to,
        decision=decision,
        from_version=current,
        action="promote",
        details={"approver": approver or settings.who, "manual": True},
    )


def rollback(
    settings: Settings, spec: ProjectSpec, *, alias: str = "production", reason: str = ""
) -> AuditEvent:
    reg = Registry(settings, spec.name)
    current = reg.alias_version(alias)
    target = reg.previous(alias)
    info = reg.version(target)
    decision = Decision(
        "promoted",
        f"rollback from {current} to {target}" + (f": {reason}" if reason else ""),
        spec.primary_metric,
        info.metrics.get(spec.primary_metric, float("nan")),
        None,
        0.0,
    )
    reg.move_alias(alias, expected=current, new=target)
    return reg.record_decision(
        version=target, alias=alias, decision=decision, from_version=current, action="rollback"
    )


def summary(decision: Decision, event: AuditEvent) -> dict[str, Any]:
    return {
        "outcome": decision.outcome,
        "reason": decision.reason,
        "alias": event.alias,
        "from_version": event.from_version,
        "to_version": event.to_version,
        "audit_id": event.id,
    }
