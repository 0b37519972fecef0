"""Promotion use cases: automatic after training, manual with a reason, rollback. All audited.

Fail closed: when a model cannot be judged now (the registry, the tracking server or a store is
unreachable or timed out, or scoring exceeds ``promotion_scoring_timeout_s``) nothing moves, the
refusal is audited and ``Unavailable`` (exit 75, retryable) is raised. Only a champion whose artifact
is *proven* unservable (missing, corrupt, refused format: ``faults.classify``) is judged absent, and
the record says so (``champion_unservable``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from mlops.errors import MlopsError, PromotionRefused, Unavailable
from mlops.governance.decision import Decision, decide, noninferiority_reason
from mlops.governance.faults import classify, describe, transient
from mlops.governance.history import previous
from mlops.governance.ledger import apply, move, record_decision
from mlops.governance.sealed import SealedSlice
from mlops.registry import Registry
from mlops.stores.audit import AuditEvent, AuditLog

if TYPE_CHECKING:
    from pathlib import Path

    import numpy as np
    import pandas as pd

    from mlops.ml.bootstrap import Interval
    from mlops.settings import Settings
    from mlops.spec import ProjectSpec

logger = logging.getLogger(__name__)
T = TypeVar("T")


class _Judged(Exception):
    """Internal: a model could not be judged; carries the fault class and its one-line cause."""

    def __init__(self, fault: str, cause: str, exc: BaseException) -> None:
        super().__init__(cause)
        self.fault, self.cause, self.exc = fault, cause, exc


def _bounded(settings: Settings, what: str, fn: Callable[[], T]) -> T:
    """``fn()`` within ``promotion_scoring_timeout_s``; a slower answer is a ``TimeoutError`` (the
    worker thread is abandoned: a hung registry call must not hang the decision)."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlops-judge")
    try:
        return pool.submit(fn).result(timeout=settings.promotion_scoring_timeout_s)
    except FutureTimeout:
        raise TimeoutError(f"{what} exceeded {settings.promotion_scoring_timeout_s}s") from None
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _judge(settings: Settings, what: str, fn: Callable[[], T]) -> T:
    """``fn()`` bounded in time; any failure becomes ``_Judged`` with its fault class."""
    try:
        return _bounded(settings, what, fn)
    except Exception as exc:
        raise _Judged(classify(exc), settings.redact(f"{what}: {describe(exc)}"), exc) from exc


def predictions(
    reg: Registry, spec: ProjectSpec, version: str, frame: pd.DataFrame
) -> tuple[float, np.ndarray]:
    """The primary metric of ``version`` on ``frame`` and its per-row output for the bootstrap:
    predicted class ids, or positive-class scores when the metric is ROC AUC of a binary use case."""
    from mlops.ml.evaluate import holdout_xy, metrics, predict_classes

    model = reg.load_native(version)
    threshold = reg.threshold(version)
    x, y = holdout_xy(spec, frame)
    proba = model.predict_proba(x)
    score = metrics(spec, y, proba, threshold)[spec.primary_metric]
    if spec.primary_metric == "roc_auc" and spec.is_binary:
        return score, proba[:, spec.positive_class if spec.positive_class is not None else 1]
    return score, predict_classes(spec, proba, threshold)


def score_on(reg: Registry, spec: ProjectSpec, version: str, holdout: pd.DataFrame) -> dict[str, float]:
    """Every metric of registered ``version`` on ``holdout``."""
    from mlops.ml.evaluate import holdout_xy, metrics

    model = reg.load_native(version)
    x, y = holdout_xy(spec, holdout)
    return metrics(spec, y, model.predict_proba(x), reg.threshold(version))


def compare(
    settings: Settings, spec: ProjectSpec, frame: pd.DataFrame, a: np.ndarray, b: np.ndarray
) -> Interval:
    """The paired bootstrap interval of ``a - b`` on ``frame``'s rows (seeded by the settings)."""
    from mlops.ml.bootstrap import paired_bootstrap

    return paired_bootstrap(
        spec.primary_metric,
        frame[spec.target].to_numpy(),
        a,
        b,
        n_classes=len(spec.class_names),
        resamples=settings.bootstrap_resamples,
        seed=settings.seed,
    )


def servable_reasons(settings: Settings, spec: ProjectSpec, version: str) -> list[str]:
    """An alias must never point at a version the service would reject: load it the way the service
    does and smoke-test it. A corrupt or unreadable artifact becomes a reason; a registry that cannot
    be reached raises ``_Judged`` (nothing is known about the version yet)."""
    from mlops.runtime import load_checked

    try:
        _bounded(settings, f"loading version {version}", lambda: load_checked(settings, spec.name, version))
    except Exception as exc:
        if transient(exc):
            raise _Judged("unavailable", settings.redact(describe(exc)), exc) from exc
        return [f"version {version} cannot be served: {settings.redact(f'{type(exc).__name__}: {exc}')}"]
    return []


def _refuse(
    settings: Settings,
    reg: Registry,
    spec: ProjectSpec,
    *,
    version: str,
    alias: str,
    expected: str | None,
    judged: _Judged,
    evidence: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
) -> NoReturn:
    """Audit a decision that cannot be taken now, then raise ``Unavailable``. The audit write is
    tried through the ledger (version tags, model card) and, when the registry is the thing that is
    down, straight to the audit log; if the audit store is down too the refusal still stands."""
    decision = Decision(
        "refused",
        f"cannot be judged now: {judged.cause}; nothing moved",
        spec.primary_metric,
        float("nan"),
        None,
        settings.promotion_margin,
        test="none",
        noninferiority_margin=settings.noninferiority_margin,
        evidence=dict(evidence or {}),
    )
    extra = {"unavailable": judged.cause, "retryable": True, **(details or {})}
    try:
        record_decision(
            reg, version=version, alias=alias, decision=decision, from_version=expected, details=extra
        )
    except Exception as exc:
        logger.warning("refusal not recorded through the registry (%s); writing the audit row only", exc)
        try:
            AuditLog.for_settings(settings).record(
                AuditEvent(
                    action="promote",
                    project=reg.project,
                    model_name=reg.name,
                    decision="refused",
                    reason=decision.reason,
                    actor=settings.who,
                    alias=alias,
                    from_version=expected,
                    to_version=version,
                    details={**decision.as_dict(), **extra},
                )
            )
        except Exception as audit_exc:
            logger.error(
                "the refusal of v%s could not be audited: %s", version, settings.redact(str(audit_exc))
            )
    raise Unavailable(
        f"promotion of {reg.name!r} v{version} to {alias!r} refused, it cannot be judged now: {judged.cause}",
        hint="nothing moved; retry when the registry and stores are reachable",
    ) from judged.exc


def _regression(
    settings: Settings,
    spec: ProjectSpec,
    reg: Registry,
    version: str,
    frame: pd.DataFrame,
    output: np.ndarray,
    notes: dict[str, Any],
) -> list[str]:
    """Non-inferiority against ``production`` on the same rows: a candidate for another alias must not
    be shown worse than what serves. A production artifact proven unservable is noted, not compared."""
    production = _judge(settings, "reading the production alias", lambda: reg.alias_version("production"))
    if production is None or production == version:
        return []
    try:
        _, theirs = _judge(
            settings, f"scoring production v{production}", lambda: predictions(reg, spec, production, frame)
        )
    except _Judged as judged:
        if judged.fault == "unavailable":
            raise
        notes["production_unservable"] = judged.cause
        logger.warning("production v%s is unservable, no regression check: %s", production, judged.cause)
        return []
    interval = compare(settings, spec, frame, output, theirs)
    notes["regression_interval"] = interval.as_dict()
    reason = noninferiority_reason(interval, settings.noninferiority_margin, f"production v{production}")
    return [reason] if reason else []


def auto_promote(
    settings: Settings,
    spec: ProjectSpec,
    version: str,
    sealed: SealedSlice,
    gate_reasons: list[str],
    registry: Registry | None = None,
) -> tuple[Decision, AuditEvent]:
    """Score the challenger and the holder of the target alias on the same sealed rows, decide by the
    paired bootstrap (superiority), then compare-and-set the alias. Training into ``staging`` also
    refuses a version not shown non-inferior to ``production`` on the same rows."""
    reg = registry or Registry(settings, spec.name)
    alias = spec.promotion_target
    evidence = sealed.evidence()
    champion: str | None = None
    notes: dict[str, Any] = {}
    if sealed.redrawn:
        notes["sealed_redrawn"] = sealed.redrawn
    try:
        champion = _judge(settings, f"reading the {alias!r} alias", lambda: reg.alias_version(alias))
        tags = _judge(settings, f"reading version {version}", lambda: reg.version(version).tags)
        notes["onnx_sha256"] = tags.get("onnx_sha256", "")  # the bytes this decision is about
        reasons = list(gate_reasons) + servable_reasons(settings, spec, version)
        score, output = float("nan"), None
        if not reasons:
            score, output = _judge(
                settings,
                f"scoring challenger v{version}",
                lambda: predictions(reg, spec, version, sealed.frame),
            )
        rival, interval = None, None
        if output is not None and champion is not None and champion != version:
            held = champion
            try:
                rival_score, theirs = _judge(
                    settings, f"scoring champion v{held}", lambda: predictions(reg, spec, held, sealed.frame)
                )
                rival, interval = rival_score, compare(settings, spec, sealed.frame, output, theirs)
            except _Judged as judged:
                if judged.fault == "unavailable":
                    raise
                notes["champion_unservable"] = judged.cause
                logger.warning("champion %s v%s is unservable, judged absent: %s", alias, held, judged.cause)
        if rival is not None:  # the champion serves: the challenger must take the same inputs
            reasons += _compatibility(settings, reg, version, champion, breaking_approved=False)
        if output is not None and alias != "production":
            reasons += _regression(settings, spec, reg, version, sealed.frame, output, notes)
    except _Judged as judged:
        _refuse(
            settings,
            reg,
            spec,
            version=version,
            alias=alias,
            expected=champion,
            judged=judged,
            evidence=evidence,
        )
    decision = decide(
        metric=spec.primary_metric,
        challenger=score,
        champion=rival,
        margin=settings.promotion_margin,
        gate_reasons=reasons,
        interval=interval,
        noninferiority_margin=settings.noninferiority_margin,
        evidence=evidence,
        notes=notes,
    )
    if "champion_unservable" in notes and decision.outcome == "promoted":
        decision = _with_reason(
            decision, f"{decision.reason} (champion v{champion} unservable: judged absent)"
        )
    event = apply(reg, decision, version=version, alias=alias, expected=champion)
    return decision, event


def _compatibility(
    settings: Settings, reg: Registry, version: str, served: str | None, *, breaking_approved: bool
) -> list[str]:
    """The compatibility gate: ``version``'s input signature against the one ``served`` answers with
    (a changed input would break the alias's live clients)."""
    from mlops.governance.gates import compatibility_reasons

    if served is None or served == version:
        return []
    candidate = _judge(settings, f"reading v{version}'s signature", lambda: reg.input_signature(version))
    current = _judge(settings, f"reading v{served}'s signature", lambda: reg.input_signature(served))
    return compatibility_reasons(candidate, current, breaking_approved=breaking_approved)


def _with_reason(decision: Decision, reason: str) -> Decision:
    from dataclasses import replace

    return replace(decision, reason=reason)


def _evidence_rows(
    settings: Settings, spec: ProjectSpec, version: str, reg: Registry, data_path: Path | None
) -> SealedSlice:
    """Re-validation rows: fresh ones when the loader can draw rows the version never saw (enough for
    the data gate), otherwise the version's own sealed slice (its epoch, from its tags)."""
    from mlops.data.split import fingerprint, seal
    from mlops.governance.sealed import columns, fresh

    new = fresh(settings, spec, version, data_path)
    if len(new) >= spec.data_gate.min_rows:
        return SealedSlice(new, fingerprint(new), -1, source="fresh")
    tags = reg.version(version).tags
    epoch = int(tags.get("sealed_epoch", "0") or 0)
    _, rows = seal(spec.load(settings), columns(spec), settings.sealed_fraction, epoch)
    return SealedSlice(rows, fingerprint(rows), epoch)


def revalidate(
    settings: Settings, spec: ProjectSpec, version: str, reg: Registry, data_path: Path | None = None
) -> tuple[dict[str, float], list[str], dict[str, Any]]:
    """Re-run every gate on evidence the version never trained on: data gate, metric minimums,
    fairness, and non-inferiority against ``production`` on the same rows. Returns the metrics, the
    reasons it refuses and the evidence record (source "fresh" or "sealed", fingerprint, interval)."""
    from mlops.data.validation import data_reasons
    from mlops.governance.gates import model_gate
    from mlops.ml.evaluate import holdout_xy, predict_classes

    rows = _evidence_rows(settings, spec, version, reg, data_path)
    evidence: dict[str, Any] = rows.evidence()
    sealed_tag = reg.version(version).tags.get("sealed_fingerprint", "")
    if rows.source == "sealed" and sealed_tag and sealed_tag != rows.fingerprint:
        evidence["sealed_mismatch"] = (
            f"version sealed {sealed_tag[:12]}, data now seals {rows.fingerprint[:12]}"
        )
    reasons = data_reasons(spec, rows.frame)
    if reasons:
        return {}, [f"{rows.source} data: {r}" for r in reasons], evidence
    x, _ = holdout_xy(spec, rows.frame)
    threshold = reg.threshold(version)
    native = reg.load_native(version)  # one load for every model gate, behaviour checks included
    proba = native.predict_proba(x)
    metrics, _, reasons = model_gate(spec, rows.frame, proba, threshold, predict_proba=native.predict_proba)
    if spec.primary_metric == "roc_auc" and spec.is_binary:
        output = proba[:, spec.positive_class if spec.positive_class is not None else 1]
    else:
        output = predict_classes(spec, proba, threshold)
    reasons += _regression(settings, spec, reg, version, rows.frame, output, evidence)
    return metrics, reasons, evidence


def check_approver(settings: Settings, approver: str) -> str:
    """``""`` when ``approver`` may approve, else why not. The allow-list is ``MLOPS_APPROVERS``;
    empty, it accepts anyone in development (with a warning) and no one elsewhere."""
    allowed = settings.approver_list()
    if allowed:  # several reviewers ("a, b", as read from a workflow run's approvals): each must be listed
        names = [n.strip() for n in approver.split(",") if n.strip()]
        outside = [n for n in names if n not in allowed]
        if not names or outside:
            return f"approver {', '.join(map(repr, outside)) or repr(approver)} is not in MLOPS_APPROVERS"
        return ""
    if settings.environment == "development":
        logger.warning("MLOPS_APPROVERS is empty: accepting approver %r (development only)", approver)
        return ""
    return f"approver {approver!r} refused: MLOPS_APPROVERS is empty in {settings.environment}"


def manual_promote(
    settings: Settings,
    spec: ProjectSpec,
    version: str,
    *,
    to: str,
    reason: str,
    approver: str | None = None,
    data_path: Path | None = None,
    breaking: bool = False,
) -> AuditEvent:
    """A person's promotion: needs a reason (and an allowed approver for production), re-runs the
    gates on fresh or sealed rows, then moves the alias by compare-and-set. Refusals are audited.
    ``breaking``: the version's inputs differ from the served version's on purpose; accepted only
    with an approver, and audited as breaking."""
    reg = Registry(settings, spec.name)
    if not reason.strip():
        raise PromotionRefused("a promotion needs a reason", hint="pass --reason 'why this version'")
    approver = (approver or "").strip()
    if to == "production" and not approver:
        raise PromotionRefused("promotion to production needs an approver", hint="pass --approver NAME")
    current: str | None = None
    try:
        info = _judge(settings, f"reading version {version}", lambda: reg.version(version))
        current = _judge(settings, f"reading the {to!r} alias", lambda: reg.alias_version(to))
    except _Judged as judged:
        if isinstance(judged.exc, MlopsError) and judged.fault == "unservable":
            raise judged.exc from None  # the version does not exist: exit 4, nothing to audit
        _refuse(settings, reg, spec, version=version, alias=to, expected=None, judged=judged)
    details: dict[str, Any] = {
        "approver": approver or settings.who,
        "manual": True,
        "onnx_sha256": info.tags.get("onnx_sha256", ""),
    }
    if breaking:
        details["breaking"] = True
    if approver:
        why = check_approver(settings, approver)
        if why:
            refused = Decision(
                "refused", f"refused: {why}", spec.primary_metric, float("nan"), None, 0.0, [why]
            )
            record_decision(
                reg, version=version, alias=to, decision=refused, from_version=current, details=details
            )
            raise PromotionRefused(why, hint="an approver must be listed in MLOPS_APPROVERS")
    if current == version:
        raise PromotionRefused(f"version {version} already holds {to!r}")
    if info.tags.get("gates_passed") != "true":
        raise PromotionRefused(
            f"version {version} of {reg.name!r} did not pass its gates at training; refused"
        )
    if breaking and not approver:
        raise PromotionRefused("a breaking promotion needs an approver", hint="pass --approver NAME")
    try:
        reasons = servable_reasons(settings, spec, version)
        reasons += _compatibility(settings, reg, version, current, breaking_approved=breaking)
        metrics, more, evidence = (
            ({}, [], {}) if reasons else revalidate(settings, spec, version, reg, data_path)
        )
    except _Judged as judged:
        _refuse(
            settings, reg, spec, version=version, alias=to, expected=current, judged=judged, details=details
        )
    except MlopsError:
        raise
    except Exception as exc:
        if not transient(exc):
            raise
        outage = _Judged("unavailable", settings.redact(describe(exc)), exc)
        _refuse(
            settings, reg, spec, version=version, alias=to, expected=current, judged=outage, details=details
        )
    reasons += more
    score = metrics.get(spec.primary_metric, float("nan"))
    details.update({"fresh_holdout_metrics": metrics, "evidence_source": evidence.get("source", "")})
    interval = _interval(evidence.get("regression_interval"))
    common: dict[str, Any] = {
        "test": "non-inferiority" if interval else "none",
        "noninferiority_margin": settings.noninferiority_margin,
        "interval": interval,
        "evidence": evidence,
    }
    if reasons:
        refused = Decision(
            "rejected",
            f"refused: {'; '.join(reasons)}",
            spec.primary_metric,
            score,
            None,
            settings.promotion_margin,
            reasons,
            **common,
        )
        record_decision(
            reg, version=version, alias=to, decision=refused, from_version=current, details=details
        )
        raise PromotionRefused(f"version {version} failed its checks before {to!r}", reasons=reasons)
    stats = f"; {spec.primary_metric} {interval.text()} vs production" if interval else ""
    decision = Decision(
        "promoted",
        f"approved by {details['approver']}: {reason} ({evidence.get('source', '')} rows{stats})",
        spec.primary_metric,
        score,
        None,
        settings.promotion_margin,
        **common,
    )
    event = move(
        reg, alias=to, expected=current, new=version, decision=decision, action="promote", details=details
    )
    return event


def _interval(data: Any) -> Interval | None:
    from mlops.ml.bootstrap import Interval

    return Interval(**data) if isinstance(data, dict) else None


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
    details = {"onnx_sha256": info.tags.get("onnx_sha256", "")}
    return move(
        reg, alias=alias, expected=current, new=target, decision=decision, action="rollback", details=details
    )


def summary(decision: Decision, event: AuditEvent) -> dict[str, Any]:
    interval = decision.interval
    return {
        "outcome": decision.outcome,
        "reason": decision.reason,
        "alias": event.alias,
        "from_version": event.from_version,
        "to_version": event.to_version,
        "audit_id": event.id,
        "test": decision.test,
        "interval": interval.as_dict() if interval else None,
        "evidence": decision.evidence,
        "challenger_score": None if math.isnan(decision.challenger_score) else decision.challenger_score,
        "champion_score": decision.champion_score,
    }
