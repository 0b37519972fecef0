"""Progressive delivery: start a shadow or canary rollout of a candidate, ramp it, judge its online
evidence, promote it through the ledger, abort it, and the guard's automatic rollback. All audited.

Shared state, not per process: the registry's ``candidate`` alias (set only here) and the rollout
record (``stores/rollouts.py``), which every worker follows on its poll. Audit actions are
``rollout.start``, ``rollout.ramp``, ``rollout.promote``, ``rollout.abort`` and
``rollout.auto_abort``, under the alias ``candidate``: never ``rollback`` on ``production``, which
``mlops rollback`` replays (``governance/history.py``). The production move of a promotion is the
ordinary ``promote`` row that ``governance.ledger.move`` writes, as for every other promotion.

Evidence (``stores/rollout_evidence.py``, statistics in ``ml/online.py``): requests, errors, p50/p99
latency, agreement and score drift need no labels; live accuracy is judged only at fixed looks (the
labelled counts ``ml.online.looks``), each at level ``1 - rollout_alpha / rollout_looks``.

Outages: a registry that cannot be reached refuses a start or a promotion (``Unavailable``, nothing
moves). Ending a rollout (abort, automatic rollback, the end after a promotion) writes the record
first, since workers follow the record, then drops the alias; a registry down at that moment leaves
the ``candidate`` alias behind (said in the result and the log), which the next start overwrites.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar, cast

from mlops.errors import MlopsError, NotFound, PromotionRefused, Unavailable, UsageError
from mlops.ml import online
from mlops.stores.audit import AuditEvent, AuditLog, outage_error
from mlops.stores.rollout_evidence import EvidenceReader, Paired, Traffic, last_incident
from mlops.stores.rollouts import MODES, Rollout, RolloutStore

if TYPE_CHECKING:
    import sqlalchemy as sa

    from mlops.settings import Settings
    from mlops.spec import ProjectSpec

logger = logging.getLogger(__name__)

CANDIDATE = "candidate"
MIN_LATENCY_SAMPLES = 100  # below this a p99 is only the maximum: the latency budget waits for more


# ----- audit -----
def _event(
    settings: Settings,
    *,
    action: str,
    project: str,
    model_name: str,
    decision: str,
    reason: str,
    candidate: str,
    baseline: str | None,
    details: dict[str, Any],
    actor: str | None = None,
) -> AuditEvent:
    return AuditEvent(
        action=action,
        project=project,
        model_name=model_name,
        decision=decision,
        reason=reason,
        actor=actor or settings.who,
        alias=CANDIDATE,
        from_version=baseline,
        to_version=candidate,
        details=details,
    )


def _audit(settings: Settings, event: AuditEvent, conn: sa.Connection | None = None) -> AuditEvent:
    return AuditLog.for_settings(settings).record(event, conn=conn)


def _audit_refusal(settings: Settings, event: AuditEvent) -> None:
    """A refusal is audited; if the audit store is down too, the refusal still stands."""
    try:
        _audit(settings, event)
    except Exception as exc:
        logger.error("refusal of %s not audited: %s", event.action, settings.redact(str(exc)))


# ----- outages: a store that cannot be reached is ``Unavailable`` (nothing moved, retry) -----
F = TypeVar("F", bound=Callable[..., Any])


def _fail_closed(fn: F) -> F:
    """A store outage (control database, prediction log) inside ``fn`` becomes ``Unavailable``: the
    command exits 75 with the cause, never a traceback. Nothing moved: every change is one transaction."""

    @functools.wraps(fn)
    def wrapper(settings: Settings, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(settings, *args, **kwargs)
        except Exception as exc:
            hint = "nothing moved; retry when the control database and the prediction log are back"
            error = outage_error(exc, settings, hint=hint)
            if error is None:
                raise
            raise error from None

    return cast("F", wrapper)


# ----- registry access, fail closed -----
def _judged(settings: Settings, what: str, fn: Any) -> Any:
    """``fn()`` bounded in time; a registry that cannot answer becomes ``Unavailable`` (nothing
    moved), a version that does not exist stays ``NotFound``."""
    from mlops.governance.promote import _judge, _Judged

    try:
        return _judge(settings, what, fn)
    except _Judged as judged:
        if isinstance(judged.exc, MlopsError) and judged.fault == "unservable":
            raise judged.exc from None
        raise Unavailable(
            f"{what}: {judged.cause}", hint="nothing moved; retry when the registry is reachable"
        ) from None


def _drop_candidate(settings: Settings, project: str, version: str) -> str:
    """Drop the ``candidate`` alias if it still names ``version``: "dropped", "absent", or why not."""
    from mlops.governance.promote import _bounded
    from mlops.registry import Registry

    reg = Registry(settings, project)

    def drop() -> str:
        if reg.alias_version(CANDIDATE) != version:
            return "absent"
        reg.drop_alias(CANDIDATE)
        return "dropped"

    try:  # bounded: a hung registry must not hang the guard's loop
        return _bounded(settings, "dropping the candidate alias", drop)
    except Exception as exc:  # the record already ended: workers follow it; the next start overwrites
        why = settings.redact(f"{type(exc).__name__}: {exc}").splitlines()[0]
        logger.warning("candidate alias of %s not dropped (registry unreachable?): %s", project, why)
        return f"left: {why}"


# ----- evidence -----
def _traffic(reader: EvidenceReader, rollout: Rollout, since: datetime) -> Traffic:
    if rollout.mode == "shadow":
        return reader.scored(rollout.project, rollout.candidate, "shadow", since)
    return reader.canary(rollout.project, rollout.candidate, since)


def _version_block(
    traffic: Traffic, version: str, correct: int, labelled: int, level: float
) -> dict[str, Any]:
    accuracy = online.wilson(correct, labelled, level) if labelled else None
    return {
        "version": version,
        "requests": traffic.requests,
        "errors": traffic.errors,
        "error_rate": traffic.error_rate,
        "latency_ms": {
            "p50": online.percentile(traffic.latencies_ms, 50),
            "p99": online.percentile(traffic.latencies_ms, 99),
            "samples": len(traffic.latencies_ms),
        },
        "live": {
            "correct": correct,
            "labelled": labelled,
            "accuracy": accuracy.estimate if accuracy else None,
            "interval": [accuracy.lo, accuracy.hi] if accuracy else None,
        },
    }


@dataclass(frozen=True)
class _Labels:
    """Labelled counts of one read: (correct, labelled) per side; ``pairs`` in shadow mode."""

    candidate: tuple[int, int]
    production: tuple[int, int]
    pairs: Paired | None = None


def _labels(
    reader: EvidenceReader, rollout: Rollout, since: datetime, until: datetime | None = None
) -> _Labels:
    if rollout.mode == "shadow":
        p = reader.paired(rollout.project, rollout.candidate, since, until)
        return _Labels((p.both + p.only_candidate, p.n), (p.both + p.only_production, p.n), p)
    mine = reader.labelled(rollout.project, rollout.candidate, since, until)
    theirs = reader.labelled(rollout.project, rollout.baseline, since, until) if rollout.baseline else (0, 0)
    return _Labels(mine, theirs)


def _difference(labels: _Labels, level: float) -> online.Difference | None:
    """Candidate minus production live accuracy: paired in shadow mode, Newcombe-Wilson in canary."""
    if labels.pairs is not None:
        p = labels.pairs
        return (
            online.newcombe_paired(p.both, p.only_candidate, p.only_production, p.neither, level)
            if p.n
            else None
        )
    (k1, n1), (k2, n2) = labels.candidate, labels.production
    return online.newcombe_unpaired(k1, n1, k2, n2, level) if n1 and n2 else None


def _look(
    settings: Settings, reader: EvidenceReader, rollout: Rollout, since: datetime, labels: _Labels
) -> dict[str, Any]:
    """The latest fixed look reached since ``since``: its labelled count, level and the difference
    on exactly the labels counted up to it (the same answer however often it is asked)."""
    count = settings.rollout_looks
    schedule = online.looks(online.first_look(settings.rollout_min_requests, count), count)
    level = online.look_level(settings.rollout_alpha, count)
    labelled = labels.candidate[1]
    reached = online.last_look(labelled, schedule)
    out: dict[str, Any] = {"labelled": labelled, "schedule": schedule, "level": level, "look": reached}
    out["difference"] = None
    if reached is not None:
        if reached < labelled:  # more labels than the look counts: read the look's own labels
            cutoff = reader.labelled_cutoff(rollout.project, rollout.candidate, rollout.mode, since, reached)
            labels = _labels(reader, rollout, since, cutoff)
        diff = _difference(labels, level)
        out["difference"] = diff.as_dict() if diff else None
        out["_diff"] = diff
    return out


def _public(look: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in look.items() if not k.startswith("_")}


def evidence(settings: Settings, rollout: Rollout, since: datetime | None = None) -> dict[str, Any]:
    """The online evidence of ``rollout`` since ``since`` (default: its start), per version."""
    since = since or rollout.started_at
    level = 1 - settings.rollout_alpha
    reader = EvidenceReader(settings.prediction_log_db_url)
    try:
        project, cand = rollout.project, rollout.candidate
        traffic = _traffic(reader, rollout, since)
        labels = _labels(reader, rollout, since)
        versions = [_version_block(traffic, cand, *labels.candidate, level)]
        base: dict[str, Any] | None = None
        if rollout.baseline is not None:
            b_traffic = reader.answered(project, rollout.baseline, since)
            base = _version_block(b_traffic, rollout.baseline, *labels.production, level)
            versions.append(base)
        agreement = None
        if rollout.mode == "shadow":
            agree, compared = reader.agreement(project, cand, since)
            share = online.wilson(agree, compared, level) if compared else None
            agreement = {
                "agree": agree,
                "compared": compared,
                "rate": share.estimate if share else None,
                "interval": [share.lo, share.hi] if share else None,
            }
        diff = _difference(labels, level)
        mine = reader.scores(project, cand, since, role="shadow" if rollout.mode == "shadow" else None)
        theirs = reader.scores(project, rollout.baseline, since) if rollout.baseline else []
        look = _look(settings, reader, rollout, since, labels)
    finally:
        reader.dispose()
    return {
        "since": since.isoformat(),
        "versions": versions,
        "candidate": versions[0],
        "production": base,
        "agreement": agreement,
        "difference": diff.as_dict() if diff else None,
        "drift": {
            "measure": "psi of the predicted-class probability (ks beside it)",
            "psi": online.psi(theirs, mine),
            "ks": online.ks(theirs, mine),
            "candidate_scores": len(mine),
            "production_scores": len(theirs),
        },
        "look": look,
    }


def _budget_reasons(settings: Settings, ev: dict[str, Any], *, need_requests: bool) -> list[tuple[str, str]]:
    """``(breach, reason)`` for each budget the candidate breaks: requests (when ``need_requests``),
    error rate, p99 latency, live accuracy shown worse at the latest look."""
    cand = ev["candidate"]
    n, errors = cand["requests"], cand["errors"]
    out: list[tuple[str, str]] = []
    if need_requests and n < settings.rollout_min_requests:
        out.append(
            ("requests", f"{n} candidate requests, fewer than the {settings.rollout_min_requests} needed")
        )
    rate = cand["error_rate"]
    if rate is not None and rate > settings.rollout_error_budget:
        bound = online.wilson(errors, n, 1 - settings.rollout_alpha).lo
        if n >= settings.rollout_min_requests or bound > settings.rollout_error_budget:
            out.append(
                (
                    "error_rate",
                    f"error rate {rate:.4f} ({errors}/{n}; lower bound {bound:.4f}) above the budget "
                    f"{settings.rollout_error_budget}",
                )
            )
    latency = cand["latency_ms"]
    p99 = latency["p99"]
    if (
        p99 is not None
        and latency["samples"] >= MIN_LATENCY_SAMPLES
        and p99 > settings.rollout_latency_budget_ms
    ):
        out.append(
            (
                "latency",
                f"p99 latency {p99:.1f} ms (of {latency['samples']}) above the budget "
                f"{settings.rollout_latency_budget_ms} ms",
            )
        )
    diff: online.Difference | None = ev["look"].get("_diff")
    if diff is not None and diff.shown_worse():
        out.append(
            (
                "accuracy",
                f"live accuracy {diff.text()} vs production at look {ev['look']['look']} labels: shown worse",
            )
        )
    return out


def _strip(ev: dict[str, Any]) -> dict[str, Any]:
    return {**ev, "look": _public(ev["look"])}


# ----- use cases -----
@_fail_closed
def start(
    settings: Settings,
    spec: ProjectSpec,
    version: str,
    mode: str,
    percent: float | None,
    actor: str | None,
    reason: str,
) -> dict[str, Any]:
    """Start a rollout of ``version`` beside production: checks (exists, passed its gates, servable,
    compatible with production), then the record and its ``rollout.start`` row in one transaction,
    the ``candidate`` alias set inside it (a refused record leaves the alias unmoved)."""
    from mlops.governance.promote import _compatibility, _Judged, servable_reasons
    from mlops.registry import Registry

    if mode not in MODES:
        raise UsageError(
            f"mode {mode!r} is not one of {', '.join(MODES)}", hint="--mode shadow or --mode canary"
        )
    if percent is None:
        percent = 100.0 if mode == "shadow" else settings.rollout_step_list()[0]
    if not 0 < percent <= 100:
        raise UsageError(f"percent {percent} is not in (0, 100]", hint="--percent 10 (a share of requests)")
    if not reason.strip():
        raise UsageError("a rollout needs a reason", hint="pass --reason 'why this candidate'")
    reg = Registry(settings, spec.name)
    store = RolloutStore.for_settings(settings)
    current = store.active(spec.name)
    if current is not None:
        raise PromotionRefused(
            f"rollout {current.id} of version {current.candidate} is already active for {spec.name!r}",
            hint="`mlops rollout status`; end it with `mlops rollout promote` or `abort` first",
        )
    info = _judged(settings, f"reading version {version}", lambda: reg.version(version))
    production = _judged(settings, "reading the production alias", lambda: reg.alias_version("production"))
    common: dict[str, Any] = {
        "project": spec.name,
        "model_name": reg.name,
        "candidate": str(version),
        "baseline": production,
    }
    reasons: list[str] = []
    if production is None:
        reasons.append("no version holds 'production': promote one first (`mlops promote`)")
    elif production == str(version):
        reasons.append(f"version {version} already holds 'production'")
    if info.tags.get("gates_passed") != "true":
        reasons.append(f"version {version} did not pass its gates at training")
    if not reasons:
        try:
            reasons += servable_reasons(settings, spec, str(version))
            reasons += _compatibility(settings, reg, str(version), production, breaking_approved=False)
        except _Judged as judged:
            _audit_refusal(
                settings,
                _event(
                    settings,
                    action="rollout.start",
                    decision="refused",
                    reason=f"cannot be judged now: {judged.cause}; nothing moved",
                    details={"mode": mode, "percent": percent, "unavailable": judged.cause},
                    actor=actor,
                    **common,
                ),
            )
            raise Unavailable(
                f"rollout of v{version} refused, it cannot be judged now: {judged.cause}",
                hint="nothing moved; retry when the registry is reachable",
            ) from None
    if reasons:
        _audit_refusal(
            settings,
            _event(
                settings,
                action="rollout.start",
                decision="refused",
                reason="refused: " + "; ".join(reasons),
                details={"mode": mode, "percent": percent, "reasons": reasons},
                actor=actor,
                **common,
            ),
        )
        raise PromotionRefused(f"rollout of version {version} refused", reasons=reasons)
    with store.transaction() as conn:
        rollout = store.start(
            project=spec.name,
            model_name=reg.name,
            candidate=str(version),
            baseline=production,
            mode=mode,  # type: ignore[arg-type]
            percent=percent,
            actor=actor or settings.who,
            reason=reason,
            conn=conn,
        )
        event = _audit(
            settings,
            _event(
                settings,
                action="rollout.start",
                decision="started",
                reason=reason,
                details={
                    "rollout": rollout.id,
                    "mode": mode,
                    "percent": percent,
                    "generation": rollout.generation,
                },
                actor=actor,
                **common,
            ),
            conn=conn,
        )
        _judged(settings, "setting the candidate alias", lambda: reg.set_alias(CANDIDATE, str(version)))
    return {"rollout": rollout.as_dict(), "audit_id": event.id, "candidate_alias": str(version)}


def _active(
    settings: Settings, project: str, *, store: RolloutStore | None = None
) -> tuple[RolloutStore, Rollout]:
    store = store or RolloutStore.for_settings(settings)
    rollout = store.active(project)
    if rollout is None:
        raise NotFound(
            f"no active rollout for {project!r}", hint="start one with `mlops rollout start VERSION`"
        )
    return store, rollout


@_fail_closed
def ramp(
    settings: Settings, spec: ProjectSpec, percent: float | None = None, *, actor: str | None = None
) -> dict[str, Any]:
    """Raise a canary's share to the next step of ``rollout_steps`` (or ``percent``), only when the
    current step has its evidence: enough candidate requests since the step began, error rate and
    p99 within budget, live accuracy not shown worse at its latest look. Refusals are audited."""
    store, rollout = _active(settings, spec.name)
    if rollout.mode != "canary":
        raise UsageError(
            f"rollout {rollout.id} is in {rollout.mode} mode: only a canary ramps",
            hint="promote or abort it, then start a canary",
        )
    if percent is None:
        later = [p for p in settings.rollout_step_list() if p > rollout.percent]
        if not later:
            raise UsageError(
                f"rollout {rollout.id} is at {rollout.percent:g} %, the last step of "
                f"{settings.rollout_steps}",
                hint="`mlops rollout promote` when the evidence is in, or --percent P",
            )
        percent = later[0]
    if not rollout.percent < percent <= 100:
        raise UsageError(
            f"percent {percent:g} is not above the current {rollout.percent:g} (and at most 100)",
            hint="a ramp only raises the share; `mlops rollout abort` ends it",
        )
    ev = evidence(settings, rollout, since=rollout.updated_at)
    breaches = _budget_reasons(settings, ev, need_requests=True)
    common: dict[str, Any] = {
        "project": rollout.project,
        "model_name": rollout.model_name,
        "candidate": rollout.candidate,
        "baseline": rollout.baseline,
    }
    details = {
        "rollout": rollout.id,
        "from_percent": rollout.percent,
        "to_percent": percent,
        "evidence": _strip(ev),
    }
    if breaches:
        reasons = [why for _, why in breaches]
        _audit_refusal(
            settings,
            _event(
                settings,
                action="rollout.ramp",
                decision="refused",
                reason="refused: " + "; ".join(reasons),
                details={**details, "reasons": reasons},
                actor=actor,
                **common,
            ),
        )
        raise PromotionRefused(f"ramp of rollout {rollout.id} to {percent:g} % refused", reasons=reasons)
    with store.transaction() as conn:
        updated = store.update(rollout.id, expected_generation=rollout.generation, percent=percent, conn=conn)
        event = _audit(
            settings,
            _event(
                settings,
                action="rollout.ramp",
                decision="ramped",
                reason=f"{rollout.percent:g} % -> {percent:g} %",
                details=details,
                actor=actor,
                **common,
            ),
            conn=conn,
        )
    return {"rollout": updated.as_dict(), "audit_id": event.id}


@_fail_closed
def status(settings: Settings, project: str) -> dict[str, Any]:
    """The active (or else the latest) rollout, its online evidence per version, the last incident.
    Reads stores only (no registry): ``GET /rollout`` serves it."""
    store = RolloutStore.for_settings(settings)
    try:
        rollout = store.active(project) or store.latest(project)
        incident = last_incident(store.engine, project)
    finally:
        store.dispose()
    out: dict[str, Any] = {
        "project": project,
        "active": bool(rollout and rollout.active),
        "rollout": rollout.as_dict() if rollout else None,
        "evidence": None,
        "last_incident": incident,
        "budgets": {
            "min_requests": settings.rollout_min_requests,
            "error_rate": settings.rollout_error_budget,
            "latency_p99_ms": settings.rollout_latency_budget_ms,
            "noninferiority_margin": settings.noninferiority_margin,
            "alpha": settings.rollout_alpha,
            "looks": settings.rollout_looks,
            "steps": settings.rollout_step_list(),
        },
    }
    if rollout is not None and rollout.active:
        ev = evidence(settings, rollout)
        out["evidence"] = _strip(ev)
        out["step"] = {"since": rollout.updated_at.isoformat(), "percent": rollout.percent}
    return out


@_fail_closed
def promote(
    settings: Settings,
    spec: ProjectSpec,
    actor: str | None,
    reason: str,
    approver: str | None = None,
) -> dict[str, Any]:
    """Governed promotion of the active rollout's candidate to ``production``: enough candidate
    requests, error rate and p99 within budget, and, once labels reach the first look, live accuracy
    non-inferior (the look's lower bound above ``-noninferiority_margin``). Refused with reasons
    (audited); otherwise ``production`` moves through ``governance.ledger.move`` (compare-and-set,
    action ``promote``), then the record ends (promoted) with its ``rollout.promote`` row."""
    from mlops.governance.decision import Decision
    from mlops.governance.ledger import move
    from mlops.governance.promote import check_approver
    from mlops.registry import Registry

    if not reason.strip():
        raise UsageError("a promotion needs a reason", hint="pass --reason 'why this candidate'")
    store, rollout = _active(settings, spec.name)
    reg = Registry(settings, spec.name)
    common: dict[str, Any] = {
        "project": rollout.project,
        "model_name": rollout.model_name,
        "candidate": rollout.candidate,
        "baseline": rollout.baseline,
    }
    ev = evidence(settings, rollout)
    reasons = [why for _, why in _budget_reasons(settings, ev, need_requests=True)]
    diff: online.Difference | None = ev["look"].get("_diff")
    margin = settings.noninferiority_margin
    look = ev["look"]
    if diff is not None and not diff.noninferior(margin) and not diff.shown_worse():
        reasons.append(
            f"live accuracy {diff.text()} vs production at look {look['look']} labels: lower bound not above "
            f"the non-inferiority margin -{margin}"
        )
    who = (approver or "").strip()
    if who or settings.approver_list() or settings.environment != "development":
        why = (
            check_approver(settings, who) if who else "promotion to production needs an approver (--approver)"
        )
        if why:
            reasons.append(why)
    production = _judged(settings, "reading the production alias", lambda: reg.alias_version("production"))
    if production != rollout.baseline:
        reasons.append(
            f"production moved from v{rollout.baseline} to v{production} since the rollout began: "
            "its evidence compares against another version"
        )
    details: dict[str, Any] = {"rollout": rollout.id, "mode": rollout.mode, "evidence": _strip(ev)}
    if reasons:
        _audit_refusal(
            settings,
            _event(
                settings,
                action="rollout.promote",
                decision="refused",
                reason="refused: " + "; ".join(reasons),
                details={**details, "reasons": reasons},
                actor=actor,
                **common,
            ),
        )
        raise PromotionRefused(
            f"promotion of rollout {rollout.id} (v{rollout.candidate}) refused", reasons=reasons
        )
    cand = ev["candidate"]
    labels = (
        f"live accuracy {diff.text()} vs production at look {look['look']} labels"
        if diff
        else f"{look['labelled']} labels, below the first look at {look['schedule'][0]}: judged without them"
    )
    decision = Decision(
        "promoted",
        f"rollout {rollout.id} ({rollout.mode}) approved by {who or actor or settings.who}: {reason} "
        f"({cand['requests']} candidate requests, error rate {cand['error_rate'] or 0:.4f}; {labels})",
        "live_accuracy",
        float(cand["live"]["accuracy"]) if cand["live"]["accuracy"] is not None else float("nan"),
        (ev["production"] or {}).get("live", {}).get("accuracy"),
        0.0,
        test="non-inferiority" if diff else "none",
        noninferiority_margin=margin,
        evidence={"source": f"rollout {rollout.id} live traffic", "rows": cand["requests"]},
    )
    event = move(
        reg,
        alias="production",
        expected=rollout.baseline,
        new=rollout.candidate,
        decision=decision,
        action="promote",
        details={**details, "approver": who or actor or settings.who, "online": True},
    )
    with store.transaction() as conn:
        ended = store.end(
            rollout.id,
            expected_generation=rollout.generation,
            state="promoted",
            incident={},
            conn=conn,
        )
        closing = _audit(
            settings,
            _event(
                settings,
                action="rollout.promote",
                decision="promoted",
                reason=reason,
                details={**details, "production_audit_id": event.id, "production_audit_seq": event.seq},
                actor=actor,
                **common,
            ),
            conn=conn,
        )
    alias = _drop_candidate(settings, spec.name, rollout.candidate)
    return {
        "rollout": ended.as_dict(),
        "production": rollout.candidate,
        "audit_id": closing.id,
        "production_audit_id": event.id,
        "candidate_alias": alias,
    }


@_fail_closed
def abort(settings: Settings, project: str, actor: str | None, reason: str) -> dict[str, Any]:
    """End the active rollout (aborted): back to production only; the record first, then the alias."""
    if not reason.strip():
        raise UsageError("an abort needs a reason", hint="pass --reason 'why'")
    store, rollout = _active(settings, project)
    with store.transaction() as conn:
        ended = store.end(
            rollout.id, expected_generation=rollout.generation, state="aborted", incident={}, conn=conn
        )
        event = _audit(
            settings,
            _event(
                settings,
                action="rollout.abort",
                decision="aborted",
                reason=reason,
                project=rollout.project,
                model_name=rollout.model_name,
                candidate=rollout.candidate,
                baseline=rollout.baseline,
                details={"rollout": rollout.id, "mode": rollout.mode, "percent": rollout.percent},
                actor=actor,
            ),
            conn=conn,
        )
    alias = _drop_candidate(settings, project, rollout.candidate)
    return {"rollout": ended.as_dict(), "audit_id": event.id, "candidate_alias": alias}


def guard_once(settings: Settings, project: str) -> dict[str, Any] | None:
    """One check of the guard: an active canary breaching its error-rate, latency or live-accuracy
    budget is ended (rolled_back, the incident naming the breach and its figures) with its
    ``rollout.auto_abort`` row in the same transaction, then the candidate alias is dropped. Returns
    the breach (the caller counts it), or None when nothing was ended."""
    store = RolloutStore.for_settings(settings)
    try:
        rollout = store.active(project)
        if rollout is None or rollout.mode != "canary":
            return None
        ev = evidence(settings, rollout)
        breaches = _budget_reasons(settings, ev, need_requests=False)
        if not breaches:
            return None
        breach, why = breaches[0]
        cand = ev["candidate"]
        incident = {
            "breach": breach,
            "reason": why,
            "breaches": [b for b, _ in breaches],
            "at": datetime.now(UTC).isoformat(),
            "figures": {
                "requests": cand["requests"],
                "errors": cand["errors"],
                "error_rate": cand["error_rate"],
                "latency_ms": cand["latency_ms"],
                "look": _public(ev["look"]),
            },
            "budgets": {
                "error_rate": settings.rollout_error_budget,
                "latency_p99_ms": settings.rollout_latency_budget_ms,
            },
        }
        with store.transaction() as conn:
            ended = store.end(
                rollout.id,
                expected_generation=rollout.generation,
                state="rolled_back",
                incident=incident,
                conn=conn,
            )
            event = _audit(
                settings,
                _event(
                    settings,
                    action="rollout.auto_abort",
                    decision="rolled_back",
                    reason=f"guard: {why}",
                    project=rollout.project,
                    model_name=rollout.model_name,
                    candidate=rollout.candidate,
                    baseline=rollout.baseline,
                    details={"rollout": rollout.id, "percent": rollout.percent, **incident},
                    actor="rollout-guard",
                ),
                conn=conn,
            )
    finally:
        store.dispose()
    alias = _drop_candidate(settings, project, rollout.candidate)
    logger.warning("rollout %s of v%s rolled back by the guard: %s", rollout.id, rollout.candidate, why)
    return {
        "breach": breach,
        "reason": why,
        "rollout": ended.as_dict(),
        "audit_id": event.id,
        "candidate_alias": alias,
    }
