"""Promotion use cases: automatic after training, manual with a reason, rollback. All audited."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mlops.errors import PromotionRefused
from mlops.governance.decision import Decision, decide
from mlops.governance.history import previous
from mlops.governance.ledger import apply, record_decision
from mlops.registry import Registry
from mlops.stores.audit import AuditEvent

if TYPE_CHECKING:
    import pandas as pd

    from mlops.settings import Settings
    from mlops.spec import ProjectSpec

logger = logging.getLogger(__name__)


def auto_promote(
    settings: Settings,
    spec: ProjectSpec,
    version: str,
    holdout: pd.DataFrame,
    challenger_metrics: dict[str, float],
    gate_reasons: list[str],
    registry: Registry | None = None,
) -> tuple[Decision, AuditEvent]:
    """Score the current holder of the use case's target alias on the challenger's holdout, decide,
    then compare-and-set the alias. Training into ``staging`` also refuses a regression against
    ``production`` on the same holdout.
    """
    reg = registry or Registry(settings, spec.name)
    alias = spec.promotion_target
    champion = reg.alias_version(alias)
    champion_score = None
    if champion is not None and champion != version:
        try:
            champion_score = score_on(reg, spec, champion, holdout)[spec.primary_metric]
        except Exception as exc:  # a champion that cannot be loaded cannot serve either: replace it
            logger.warning("champion %s v%s cannot be scored, judged as absent: %s", alias, champion, exc)
    reasons = list(gate_reasons) + servable_reasons(settings, spec, version)
    if alias != "production":
        reasons += regression_reasons(settings, spec, reg, version, holdout, challenger_metrics)
    decision = decide(
        metric=spec.primary_metric,
        challenger=challenger_metrics[spec.primary_metric],
        champion=champion_score,
        margin=settings.promotion_margin,
        gate_reasons=reasons,
    )
    event = apply(reg, decision, version=version, alias=alias, expected=champion)
    return decision, event


def score_on(reg: Registry, spec: ProjectSpec, version: str, holdout: pd.DataFrame) -> dict[str, float]:
    """The metrics of registered ``version`` on ``holdout`` (the challenger's rows, for a fair comparison)."""
    from mlops.ml.evaluate import holdout_xy, metrics

    model = reg.load_native(version)
    x, y = holdout_xy(spec, holdout)
    return metrics(spec, y, model.predict_proba(x), reg.threshold(version))


def servable_reasons(settings: Settings, spec: ProjectSpec, version: str) -> list[str]:
    """An alias must never point at a version the service would reject: load it the way the service
    does and smoke-test it. A corrupt or unreadable artifact becomes a reason, not a crash."""
    from mlops.runtime import load_checked

    try:
        load_checked(settings, spec.name, version)
    except Exception as exc:
        return [f"version {version} cannot be served: {settings.redact(f'{type(exc).__name__}: {exc}')}"]
    return []


def regression_reasons(
    settings: Settings,
    spec: ProjectSpec,
    reg: Registry,
    version: str,
    holdout: pd.DataFrame,
    challenger_metrics: dict[str, float],
) -> list[str]:
    """The candidate must not be worse than the production model on the same holdout (beyond the margin)."""
    production = reg.alias_version("production")
    if production is None or production == version:
        return []
    metric = spec.primary_metric
    try:
        champion = score_on(reg, spec, production, holdout)[metric]
    except Exception as exc:  # nothing to regress against: production itself cannot be loaded
        logger.warning("production v%s cannot be scored, no regression check: %s", production, exc)
        return []
    challenger = challenger_metrics[metric]
    if challenger + settings.promotion_margin < champion:
        return [f"{metric} {challenger:.4f} regresses against production v{production} ({champion:.4f})"]
    return []


def revalidate(
    settings: Settings, spec: ProjectSpec, version: str, reg: Registry
) -> tuple[dict[str, float], list[str]]:
    """Re-run every gate on a fresh holdout: data gate, metric minimums, fairness, no regression."""
    from mlops.data.split import split
    from mlops.data.validation import data_reasons
    from mlops.governance.gates import model_gate
    from mlops.ml.evaluate import holdout_xy

    fresh_seed = settings.seed + 1_000 + int(version)
    fresh = spec.load(settings.model_copy(update={"seed": fresh_seed}))
    reasons = data_reasons(spec, fresh)
    if reasons:
        return {}, [f"fresh data: {r}" for r in reasons]
    _, holdout = split(fresh, spec.target, settings.test_size, fresh_seed)
    x, _ = holdout_xy(spec, holdout)
    proba = reg.load_native(version).predict_proba(x)  # one load, one prediction for every model gate
    metrics, _, reasons = model_gate(spec, holdout, proba, reg.threshold(version))
    reasons += regression_reasons(settings, spec, reg, version, holdout, metrics)
    return metrics, reasons


def manual_promote(
    settings: Settings,
    spec: ProjectSpec,
    version: str,
    *,
    to: str,
    reason: str,
    approver: str | None = None,
) -> AuditEvent:
    """A person's promotion: needs a reason (and an approver for production), re-runs the gates on a
    fresh holdout, then moves the alias by compare-and-set. Refusals are audited too.
    """
    reg = Registry(settings, spec.name)
    if not reason.strip():
        raise PromotionRefused("a promotion needs a reason", hint="pass --reason 'why this version'")
    if to == "production" and not (approver or "").strip():
        raise PromotionRefused("promotion to production needs an approver", hint="pass --approver NAME")
    info = reg.version(version)
    current = reg.alias_version(to)
    if current == version:
        raise PromotionRefused(f"version {version} already holds {to!r}")
    if info.tags.get("gates_passed") != "true":
        raise PromotionRefused(
            f"version {version} of {reg.name!r} did not pass its gates at training; refused"
        )
    reasons = servable_reasons(settings, spec, version)
    metrics, more = ({}, []) if reasons else revalidate(settings, spec, version, reg)
    reasons += more
    score = metrics.get(spec.primary_metric, float("nan"))
    details = {"approver": approver or settings.who, "manual": True, "fresh_holdout_metrics": metrics}
    if reasons:
        refused = Decision(
            "rejected",
            f"refused: {'; '.join(reasons)}",
            spec.primary_metric,
            score,
            None,
            settings.promotion_margin,
            reasons,
        )
        record_decision(
            reg, version=version, alias=to, decision=refused, from_version=current, details=details
        )
        raise PromotionRefused(f"version {version} failed its checks before {to!r}", reasons=reasons)
    decision = Decision(
        "promoted",
        f"approved by {details['approver']}: {reason}",
        spec.primary_metric,
        score,
        None,
        settings.promotion_margin,
    )
    reg.move_alias(to, expected=current, new=version)
    return record_decision(
        reg,
        version=version,
        alias=to,
        decision=decision,
        from_version=current,
        action="promote",
        details=details,
    )


def rollback(
    settings: Settings, spec: ProjectSpec, *, alias: str = "production", reason: str = ""
) -> AuditEvent:
    reg = Registry(settings, spec.name)
    current = reg.alias_version(alias)
    target = previous(reg, alias)
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
    return record_decision(
        reg, version=target, alias=alias, decision=decision, from_version=current, action="rollback"
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
