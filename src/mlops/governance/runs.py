"""Runs that died without a word: ``kill -9``, the OOM killer or a lost machine run no hook.

Every pipeline run started here leaves a marker in ``<state>/runs/`` (pid, process start time, host,
pipeline, start, the name its ZenML run is given) and removes it when the run returns, whatever the
outcome (the step hooks audit those). A marker whose process is gone is a run that was killed: the
next command that looks (``mlops train``, ``status``, ``audit``, any pipeline) reconciles it once: the
ZenML run still shown as running is marked failed and one ``pipeline``/``failed`` row goes to the
audit log. The run is found by the name the marker gave it, so an overlapping run of another process
is never the one marked failed. No alias can have moved: promotion is a run's last step and a single
compare-and-set.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops.settings import Settings
from mlops.stores.audit import AuditEvent, AuditLog

logger = logging.getLogger(__name__)


def _runs_dir(settings: Settings) -> Path:
    return settings.state_dir / "runs"


def _started(pid: int) -> float | None:
    """The start time of process ``pid`` (None: no such process); with the pid it names one process."""
    import psutil

    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


@contextlib.contextmanager
def tracked(settings: Settings, project: str, pipeline: str) -> Iterator[str]:
    """Mark a run for its lifetime, after reconciling the runs that died before it; yields the unique
    name the ZenML run must be given."""
    reconcile(settings)
    folder = _runs_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex
    marker = folder / f"{token}.json"
    now = datetime.now(UTC)
    run_name = f"{pipeline}-{now:%Y_%m_%d-%H_%M_%S}-{token[:8]}"
    facts = {
        "pid": os.getpid(),
        "process_started": _started(os.getpid()),
        "host": socket.gethostname(),
        "project": project,
        "pipeline": pipeline,
        "started_at": now.isoformat(),
        "zenml_run_name": run_name,
    }
    marker.write_text(json.dumps(facts))
    try:
        yield run_name
    finally:
        marker.unlink(missing_ok=True)


def reconcile(settings: Settings) -> list[AuditEvent]:
    """Audit every marked run whose process is gone (once each, even with concurrent reconcilers)."""
    folder = _runs_dir(settings)
    events = []
    for marker in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            facts = json.loads(marker.read_text())
        except (OSError, ValueError):
            continue  # being written, or already taken by another reconciler
        if facts.get("host") != socket.gethostname():
            continue  # another machine's run: only it can tell whether the process lives
        if facts.get("process_started") is not None and _started(facts["pid"]) == facts["process_started"]:
            continue  # still running
        claimed = marker.with_suffix(".reconciling")
        try:
            marker.rename(claimed)  # atomic: exactly one reconciler wins
        except FileNotFoundError:
            continue
        events.append(_record_death(settings, facts))
        claimed.unlink(missing_ok=True)
    return events


def _record_death(settings: Settings, facts: dict[str, Any]) -> AuditEvent:
    run = _fail_zenml_run(settings, facts)
    step = f" in step {run['step']!r}" if run.get("step") else ""
    reason = f"{facts['pipeline']} died{step}: process {facts['pid']} on {facts['host']} is gone (killed)"
    logger.warning("reconciled a dead run: %s", reason)
    return AuditLog.for_settings(settings).record(
        AuditEvent(
            action="pipeline",
            project=facts["project"],
            model_name=settings.registered_model_name(facts["project"]),
            decision="failed",
            reason=reason,
            actor=f"{settings.who} (reconciled)",
            details={**facts, **run, "reconciled": True},
        )
    )


def _fail_zenml_run(settings: Settings, facts: dict[str, Any]) -> dict[str, Any]:
    """Mark the dead process's ZenML run failed (it would show as running for ever) and name the
    step it died in. Best effort: the audit row is written whatever happens here."""
    try:
        from zenml.client import Client
        from zenml.enums import ExecutionStatus
        from zenml.models import PipelineRunUpdate

        client = Client()
        try:
            run = client.get_pipeline_run(facts["zenml_run_name"], allow_name_prefix_match=False)
        except KeyError:
            return {}  # killed before ZenML created the run
        if run.status.is_finished:
            return {"zenml_run_id": str(run.id), "step": None}
        step = next((n for n, s in run.steps.items() if not s.status.is_finished), None)
        reason = f"process {facts['pid']} gone during step {step!r}"
        client.zen_store.update_run(
            run.id, PipelineRunUpdate(status=ExecutionStatus.FAILED, status_reason=reason)
        )
        return {"zenml_run_id": str(run.id), "step": step}
    except Exception as exc:  # the store may be unreachable: the audit row still tells the story
        logger.warning("could not mark the ZenML run of a dead process failed: %s", exc)
    return {}
