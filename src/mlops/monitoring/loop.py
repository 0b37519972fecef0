"""One monitoring pass, and the loop of the embedded default that repeats it.

A pass (``run_pass``), every step audited (``monitor.*`` rows: ids, hashes and figures, never a raw
input):

1. **Follow up** the current episode's retrain job: once it succeeded, its new version enters
   shadow as the candidate (``governance.rollout.start``, mode shadow: the rollout machinery, and
   only it, promotes on evidence). ``monitor.shadow``: started, refused (the rollout's own reasons)
   or skipped (the job failed; training already promoted the version). Once per job.
2. **Check drift**: the caller's ``check`` (the CLI runs the monitoring pipeline) compares the
   latest ``MLOPS_MONITOR_WINDOW`` predictions with the training data of the version holding the
   served alias *now*, so the reference follows production. ``monitor.drift``: detected or clean.
3. **Act** (``policy.on_drift``): nothing on undrifted traffic; within the cooldown of the episode
   that already started, ``monitor.cooldown``; else a new episode: the alert webhook, then a retrain
   job (``monitor.retrain``).

The retrain job goes straight into the control database's single-flight jobs (``stores.jobs``), not
through the service's ``POST /retrain``: the monitor already needs the control database (audit,
cooldown) and the registry (the reference), it needs no admin key that way, and it works while the
service is down or restarting. The single flight is the same unique key either way: a retrain already
running (an operator's) is joined, not doubled. With ``MLOPS_RUNNER=local`` (the embedded default)
the monitor starts the job's local runner as the service would and holds the job until the runner
claims it; with ``external`` (server mode) the job waits for an ``mlops worker``.

State lives in the control database, so several monitors agree: the cooldown is the lease
``monitor-cooldown:<project>`` (table ``leases``: its holder is the episode's job id, it expires when
the cooldown ends, and a compare-and-set takes it), and the once-only follow-up of a job is the lease
``monitor-followed:<job id>``, taken by whichever monitor follows it up first.
"""

from __future__ import annotations

import logging
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlops.errors import MlopsError, NotFound, PromotionRefused, Unavailable, UsageError
from mlops.monitoring import policy
from mlops.monitoring.alert import notify
from mlops.stores.audit import AuditEvent, AuditLog, outage_error
from mlops.stores.jobs import Job, JobStore, hold_until_claimed, start_local_runner
from mlops.stores.leases import LeaseStore

if TYPE_CHECKING:
    from mlops.settings import Settings
    from mlops.spec import ProjectSpec

logger = logging.getLogger(__name__)

DriftCheck = Callable[[], dict[str, Any]]
FOREVER_S = 10 * 365 * 86_400.0  # the follow-up marker: kept, one row per retrain job
MIN_LEASE_S = 0.001  # a cooldown of 0 still names the episode's job, expired at once
MIN_ROWS = 50  # fewer predictions than this: no drift test means anything yet (`mlops drift` too)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)\s*$", re.IGNORECASE)
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0}


def cooldown_lease(project: str) -> str:
    return f"monitor-cooldown:{project}"


def followed_lease(job_id: str) -> str:
    return f"monitor-followed:{job_id}"


def parse_duration(text: str) -> float:
    """Seconds of ``30s``, ``10m``, ``1h`` (decimals allowed); anything else is a UsageError."""
    match = _DURATION.match(text)
    seconds = float(match.group(1)) * _UNIT_S[match.group(2).lower()] if match else 0.0
    if seconds <= 0:
        raise UsageError(f"{text!r} is not a duration", hint="a positive number and a unit: 30s, 10m or 1h")
    return seconds


@dataclass
class _Pass:
    """What one pass touches: its stores (disposed at the end) and its audit identity."""

    settings: Settings
    spec: ProjectSpec
    actor: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def __post_init__(self) -> None:
        self.audit = AuditLog.for_settings(self.settings)
        self.jobs = JobStore.for_settings(self.settings)
        self.leases = LeaseStore.for_settings(self.settings)

    def record(
        self,
        action: str,
        decision: str,
        reason: str,
        details: dict[str, Any],
        *,
        from_version: str | None = None,
        to_version: str | None = None,
    ) -> AuditEvent:
        return self.audit.record(
            AuditEvent(
                action=action,
                project=self.spec.name,
                model_name=self.settings.registered_model_name(self.spec.name),
                decision=decision,
                reason=reason,
                actor=self.actor,
                alias=self.settings.serving_alias,
                from_version=from_version,
                to_version=to_version,
                details={"monitor_pass": self.id, **details},
            )
        )

    def dispose(self) -> None:
        for store in (self.audit, self.jobs, self.leases):
            store.dispose()


def run_pass(
    settings: Settings, spec: ProjectSpec, check: DriftCheck, *, actor: str | None = None
) -> dict[str, Any]:
    """One pass: follow up the episode's job, check drift, act (module docstring). Returns what it
    did; a store that cannot be reached is ``Unavailable`` (each step is its own transaction, and
    what the pass did so far is audited: the next pass goes on from there)."""
    try:
        return _run_pass(settings, spec, check, actor=actor)
    except Exception as exc:
        hint = "the next pass retries; `mlops audit` shows what this one did"
        error = outage_error(exc, settings, hint=hint)
        if error is None:
            raise
        raise error from None


PURGE_EVERY_S = 3600.0  # the retention purge at most hourly, whichever monitor gets there first


def _purge(run: _Pass) -> dict[str, Any] | None:
    """The scheduled retention purge (``mlops.stores.retention``, audited), at most once an hour across
    every monitor (a lease in the control database); None when another pass did it within the hour."""
    from mlops.stores.retention import purge_expired

    if not run.leases.acquire("retention-purge", run.id, PURGE_EVERY_S):
        return None
    return purge_expired(run.settings, actor=run.actor).as_dict()


def _run_pass(
    settings: Settings, spec: ProjectSpec, check: DriftCheck, *, actor: str | None
) -> dict[str, Any]:
    run = _Pass(settings, spec, actor or f"{settings.who} (monitor)")
    try:
        out: dict[str, Any] = {"project": spec.name, "pass": run.id, "at": datetime.now(UTC).isoformat()}
        out["purge"] = _purge(run)
        out["follow_up"] = follow_up(run)
        waiting = _too_few_predictions(settings, spec)
        if waiting:
            out.update(action="wait", reason=waiting)
            return out
        drift = check()
        out["drift"] = _drift_facts(drift)
        held = run.leases.holder(cooldown_lease(spec.name))
        verdict = policy.on_drift(
            drift,
            retrain_share=settings.drift_retrain_share,
            cooling_until=held[1] if held else None,
            now=datetime.now(UTC),
        )
        run.record(
            "monitor.drift",
            "detected" if drift["detected"] else "clean",
            verdict.reason,
            out["drift"],
            to_version=str(drift["model_version"]),
        )
        out.update(action=verdict.action, reason=verdict.reason)
        if verdict.action == "cooldown":
            assert held is not None
            _cooldown(run, out, episode=held[0], until=held[1])
        elif verdict.action in ("alert", "retrain"):
            out["episode"] = _episode(run, drift, out, retrain=verdict.action == "retrain")
        return out
    finally:
        run.dispose()


def _too_few_predictions(settings: Settings, spec: ProjectSpec) -> str:
    from mlops.stores.predictions import read_predictions

    rows = len(read_predictions(settings.prediction_log_db_url, spec.name, limit=MIN_ROWS))
    if rows >= MIN_ROWS:
        return ""
    return f"{rows} predictions of {spec.name!r} in the log, fewer than the {MIN_ROWS} a drift check needs"


def _drift_facts(drift: dict[str, Any]) -> dict[str, Any]:
    """The audit's view of a drift check: ids, hashes and figures (no row, no feature value)."""
    keys = ("record_id", "model_version", "share", "threshold_share", "rows", "reference_rows")
    facts = {k: drift.get(k) for k in keys}
    facts["drifted_features"] = list(drift.get("drifted_features", []))
    facts["scores"] = {n: round(float(f["score"]), 6) for n, f in drift.get("features", {}).items()}
    for optional in ("reference_hash", "zenml_run_id", "report_path"):
        if drift.get(optional):
            facts[optional] = drift[optional]
    return facts


def _cooldown(run: _Pass, out: dict[str, Any], *, episode: str, until: datetime) -> None:
    details = {"episode": episode, "until": until.isoformat(), "cooldown_s": run.settings.monitor_cooldown_s}
    run.record("monitor.cooldown", "skipped", out["reason"], details)
    out["cooldown"] = details


def _episode(run: _Pass, drift: dict[str, Any], out: dict[str, Any], *, retrain: bool) -> dict[str, Any]:
    """A new drift episode: the alert, then (``retrain``) the job; the cooldown lease names it."""
    settings, project = run.settings, run.spec.name
    ttl = max(settings.monitor_cooldown_s, MIN_LEASE_S)
    facts = {
        "project": project,
        "model_version": str(drift["model_version"]),
        "drift_record_id": drift.get("record_id"),
        "share": drift["share"],
        "drifted_features": list(drift.get("drifted_features", [])),
    }
    if not retrain:
        if not run.leases.acquire(cooldown_lease(project), f"alert:{run.id}", ttl):
            return _lost_race(run, out)
        alerted = notify(settings, f"drift on {project}: {out['reason']}", facts)
        run.record("monitor.retrain", "skipped", out["reason"], {**facts, **alerted})
        return {"retrain": False, **alerted}
    alerted = notify(settings, f"drift on {project}: {out['reason']}; retraining", facts)
    local = settings.runner == "local"
    job, created = run.jobs.submit(project, lease_s=settings.runner_lease_s, held=local)
    if not run.leases.acquire(cooldown_lease(project), job.id, ttl):
        return _lost_race(run, out)  # another monitor's episode, with another job, came first
    runner: dict[str, Any] = {"runner": settings.runner}
    if created and local:
        job = _start_runner(settings, run.jobs, job)
        runner["runner_claimed"] = job.runner is not None
    decision = "started" if created else "joined"
    why = f"{out['reason']}: job {job.id} {'recorded' if created else 'already active, joined'}"
    details = {**facts, **alerted, **runner, "job_id": job.id, "job_state": job.state}
    event = run.record("monitor.retrain", decision, why, details, from_version=facts["model_version"])
    return {
        "retrain": True,
        "job_id": job.id,
        "created": created,
        "state": job.state,
        "audit_id": event.id,
        **alerted,
    }


def _lost_race(run: _Pass, out: dict[str, Any]) -> dict[str, Any]:
    held = run.leases.holder(cooldown_lease(run.spec.name))
    episode, until = held if held else ("", datetime.now(UTC))
    _cooldown(run, out, episode=episode, until=until)
    out["action"] = "cooldown"
    return {"retrain": False, "episode": episode}


def _start_runner(settings: Settings, jobs: JobStore, job: Job) -> Job:
    """The job's local runner, held until it claims the job (bounded by the lease)."""
    job, proc = start_local_runner(settings, jobs, job)
    if proc is None:
        return job
    held = hold_until_claimed(
        jobs, job.id, proc, every_s=settings.runner_heartbeat_s, timeout_s=settings.runner_lease_s
    )
    return held or job


# ----- the follow-up: the episode's job succeeded, its version enters shadow -----
def follow_up(run: _Pass) -> dict[str, Any] | None:
    """Shadow the version the episode's job registered, once (module docstring); None: no job."""
    held = run.leases.holder(cooldown_lease(run.spec.name))
    job = run.jobs.get(held[0]) if held and held[0].isalnum() else None
    if job is None:
        return None
    shown: dict[str, Any] = {"job_id": job.id, "state": job.state, "model_version": job.model_version}
    if job.active:
        return {**shown, "action": "wait"}
    marker = followed_lease(job.id)
    if not run.leases.acquire(marker, run.id, FOREVER_S):
        return {**shown, "action": "done"}  # this job was followed up already (by any monitor)
    try:
        return {**shown, **_shadow(run, job)}
    except Exception:
        run.leases.release(marker, run.id)  # nothing moved: the next pass tries again
        raise


def _shadow(run: _Pass, job: Job) -> dict[str, Any]:
    from mlops.governance import rollout

    settings, spec = run.settings, run.spec
    served = _served(settings, spec.name) if job.state == "succeeded" else None
    decided = policy.after_job(job.state, job.model_version, served, error=job.error)
    details: dict[str, Any] = {"job_id": job.id, "job_state": job.state, "promotion": job.promotion}
    if decided.action != "shadow":
        event = run.record(
            "monitor.shadow",
            "skipped",
            decided.reason,
            details,
            from_version=served,
            to_version=job.model_version,
        )
        return {"action": "skipped", "reason": decided.reason, "audit_id": event.id}
    version = str(job.model_version)
    reason = f"monitor: {decided.reason} (retrain job {job.id}); promotion only on its evidence"
    try:
        started = rollout.start(settings, spec, version, "shadow", None, run.actor, reason)
    except (PromotionRefused, NotFound) as refused:
        details["reasons"] = list(refused.reasons)
        event = run.record(
            "monitor.shadow", "refused", f"{refused.message}: {'; '.join(refused.reasons)}", details,
            from_version=served, to_version=version,
        )  # fmt: skip
        return {"action": "refused", "reasons": list(refused.reasons), "audit_id": event.id}
    details.update(rollout=started["rollout"]["id"], rollout_audit_id=started["audit_id"])
    event = run.record("monitor.shadow", "started", reason, details, from_version=served, to_version=version)
    return {"action": "shadow", "rollout": started["rollout"], "audit_id": event.id}


def _served(settings: Settings, project: str) -> str | None:
    """The version holding the served alias; a registry that cannot answer is ``Unavailable``."""
    from mlops.registry import Registry

    try:
        return Registry(settings, project).alias_version(settings.serving_alias)
    except Exception as exc:
        why = settings.redact(f"{type(exc).__name__}: {exc}").splitlines()[0]
        raise Unavailable(
            f"the registry cannot be read: {why}", hint="nothing moved; the next pass follows the job up"
        ) from None


# ----- the loop of the embedded default: a foreground convenience, no scheduler -----
def every(
    interval_s: float,
    one_pass: Callable[[], dict[str, Any]],
    stop: threading.Event,
    on_result: Callable[[dict[str, Any] | MlopsError], None],
) -> int:
    """Run ``one_pass`` now and then every ``interval_s`` until ``stop`` is set; a pass that fails
    with our own error (a store down, no model yet) is reported and the loop goes on. The passes run."""
    done = 0
    while not stop.is_set():
        try:
            on_result(one_pass())
        except MlopsError as exc:
            on_result(exc)
        done += 1
        stop.wait(interval_s)
    return done
