"""The monitoring loop end to end on readmission, every pass through `mlops monitor --once` and the real
monitoring pipeline: traffic through the real service's prediction log, the generator's drift knob,
the real retrain job (its local runner trains through the ZenML pipeline in its own process), the
rollout machinery, and a webhook receiver on loopback.

Undrifted traffic starts nothing; drifted traffic is detected, alerts, starts one retrain job; once the
job succeeded the next pass puts its version in shadow as the candidate (never in production), and
the drift of that pass, inside the cooldown, starts no second job. When production moves, the next
pass measures drift against the new version's training data. Each step has its audit row."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.support.webhook import receiver

pytestmark = pytest.mark.pipeline

WINDOW = 400


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    with receiver("/alerts") as hook:
        yield hook


def traffic(settings: Any, *, drift: bool, seed: int) -> None:
    """``WINDOW`` generated rows through the service's /predict/batch; the log drains at shutdown."""
    from mlops.data.readmission.generator import generate
    from mlops.projects import get_project
    from mlops.serving.app import create_app

    spec = get_project("readmission")
    rows = spec.prepare(generate(WINDOW, seed=seed, drift=drift))
    rows[spec.numeric_features] = rows[spec.numeric_features].astype(int)  # counts, as clients send them
    with TestClient(create_app(settings)) as client:
        for start in range(0, WINDOW, 200):
            batch = rows.iloc[start : start + 200].to_dict("records")
            answer = client.post("/predict/batch", json={"rows": batch})
            assert answer.status_code == 200, answer.text[:500]


def monitor_once(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    from typer.testing import CliRunner

    from mlops.cli import app, render
    from mlops.settings import get_settings

    document = io.StringIO()
    monkeypatch.setattr(render, "json_out", document)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["monitor", "--once", "--json"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    out: dict[str, Any] = json.loads(document.getvalue())
    return out


@pytest.fixture
def runners(settings) -> Iterator[list[str]]:
    """Job ids whose local runner this test caused: a runner still alive at the end (a failed test)
    is killed with its training child (it leads its own session: its pid is its group)."""
    from mlops.stores.jobs import JobStore

    started: list[str] = []
    yield started
    store = JobStore.for_settings(settings)
    for job_id in started:
        job = store.get(job_id)
        if job is not None and job.active and job.pid:  # a finished job's pid may be reused
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(job.pid, signal.SIGKILL)
    store.dispose()


def wait_for_job(settings: Any, job_id: str, timeout: float = 600) -> Any:
    from mlops.stores.jobs import JobStore

    store = JobStore.for_settings(settings)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            job = store.get(job_id)
            if job is not None and not job.active:
                return job
            time.sleep(1)
    finally:
        store.dispose()
    log = settings.state_dir / "runners" / f"{job_id}.log"
    raise AssertionError(f"job {job_id} still active after {timeout} s:\n{log.read_text()[-3000:]}")


def test_drift_retrains_and_the_candidate_proves_itself_in_shadow(
    settings, webhook, runners, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.support.training import train_register_promote

    from mlops.configure import configure_libraries
    from mlops.governance import rollout
    from mlops.governance.promote import manual_promote
    from mlops.projects import get_project
    from mlops.registry import Registry
    from mlops.settings import Settings
    from mlops.stores.audit import AuditLog
    from mlops.stores.jobs import JobStore
    from mlops.stores.rollouts import RolloutStore

    url, alerts = webhook
    for key, value in {
        "MLOPS_PROJECT": "readmission",
        "MLOPS_RUNNER": "local",
        "MLOPS_RUNNER_HEARTBEAT_S": "1",
        "MLOPS_MONITOR_WINDOW": str(WINDOW),
        "MLOPS_MONITOR_COOLDOWN_S": "3600",
        "MLOPS_SEARCH_TRIALS": "1",  # the retrain job's search: one trial (a loaded machine)
        "MLOPS_ALERT_WEBHOOK_URL": url,
    }.items():
        monkeypatch.setenv(key, value)
    s = configure_libraries(Settings())
    spec = get_project("readmission")
    assert train_register_promote(s, "readmission")["promotion"]["alias"] == "staging"
    manual_promote(s, spec, "1", to="production", reason="clinical review", approver="qa")

    # undrifted traffic: a check, nothing started
    traffic(s, drift=False, seed=31)
    clean = monitor_once(monkeypatch)
    assert clean["action"] == "none" and clean["drift"]["model_version"] == "1", clean
    jobs = JobStore.for_settings(s)
    assert jobs.latest("readmission") is None and alerts == []

    # drifted traffic: detected, alerted, one retrain job (its local runner trains v2)
    traffic(s, drift=True, seed=32)
    drifted = monitor_once(monkeypatch)
    assert drifted["action"] == "retrain" and drifted["drift"]["share"] >= s.drift_share_threshold
    assert "medical_specialty" in drifted["drift"]["drifted_features"]
    episode = drifted["episode"]
    runners.append(episode["job_id"])
    assert episode["created"] and episode["alert"] == "sent"
    (alert,) = alerts
    assert alert["drift_record_id"] == drifted["drift"]["record_id"] and alert["model_version"] == "1"
    job = wait_for_job(s, episode["job_id"])
    assert job.state == "succeeded" and job.model_version == "2", job.error

    # the next pass: v2 enters shadow as the candidate; the drift, inside the cooldown, starts nothing
    shadowed = monitor_once(monkeypatch)
    follow = shadowed["follow_up"]
    assert follow["action"] == "shadow" and follow["rollout"]["candidate"] == "2", follow
    assert follow["rollout"]["mode"] == "shadow" and follow["rollout"]["baseline"] == "1"
    assert shadowed["action"] == "cooldown" and shadowed["cooldown"]["episode"] == job.id
    reg = Registry(s, "readmission")
    assert reg.alias_version("candidate") == "2" and reg.alias_version("production") == "1"  # not promoted
    store = RolloutStore.for_settings(s)
    active = store.active("readmission")
    store.dispose()
    assert active is not None and active.candidate == "2" and active.mode == "shadow"
    assert jobs.latest("readmission").id == job.id and len(alerts) == 1  # no second job, no second alert

    # production moves (an operator, on evidence): the next pass's reference is v2's training data
    rollout.abort(s, "readmission", "qa", "evidence reviewed by hand")
    reg.move_alias("production", expected="1", new="2")  # the move itself is not under test here
    followed = monitor_once(monkeypatch)
    assert followed["drift"]["model_version"] == "2" and followed["follow_up"]["action"] == "done"
    assert followed["action"] == "cooldown"
    jobs.dispose()

    log = AuditLog.for_settings(s)
    trail = [(e.action, e.decision) for e in log.history(project="readmission")]
    log.dispose()
    monitor_steps = [t for t in trail if t[0].startswith(("monitor.", "rollout.start"))]
    assert monitor_steps == [
        ("monitor.drift", "clean"),
        ("monitor.drift", "detected"),
        ("monitor.retrain", "started"),
        ("rollout.start", "started"),
        ("monitor.shadow", "started"),
        ("monitor.drift", "detected"),
        ("monitor.cooldown", "skipped"),
        ("monitor.drift", "detected"),
        ("monitor.cooldown", "skipped"),
    ], trail
