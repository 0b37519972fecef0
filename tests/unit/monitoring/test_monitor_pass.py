"""One monitoring pass (``monitoring/loop.py``) on real stores (SQLite control database and prediction
log under the test's state folder), a real webhook receiver on loopback, and the server-mode runner
(``external``: the job is only queued, no process starts). The drift check is the pass's input (the
CLI passes the monitoring pipeline; ``tests/pipeline/test_monitor_loop.py`` runs it for real), so
here it is a recorded summary.

Undrifted traffic starts nothing; drift alerts, records one retrain job and the cooldown; drift again
within the cooldown (from a second monitor too) starts no second job; a failed job is followed up
once, with no shadow; too little traffic checks nothing. Every step leaves its ``monitor.*`` row,
with no raw input in it."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from tests.support.webhook import receiver

from mlops.errors import JobResult
from mlops.monitoring.loop import MIN_ROWS, cooldown_lease, every, run_pass
from mlops.projects import get_project
from mlops.stores.audit import AuditLog
from mlops.stores.jobs import JobStore
from mlops.stores.leases import LeaseStore
from mlops.stores.predictions import PredictionStore, Record

SECRET_VALUE = 7.654321  # a feature value of the logged traffic: it must never reach the audit


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    with receiver("/hook/token-in-path") as hook:
        yield hook


@pytest.fixture
def monitored(settings, webhook):
    """Settings of a monitor: external runner, a webhook, an hour's cooldown; 60 logged predictions."""
    url, _ = webhook
    s = settings.model_copy(
        update={"runner": "external", "alert_webhook_url": url, "monitor_cooldown_s": 3600.0}
    )
    log = PredictionStore(s.prediction_log_db_url)
    row = {"sepal_length": SECRET_VALUE, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
    log.insert(
        [
            Record(
                uuid.uuid4().hex,
                datetime.now(UTC),
                "iris",
                "iris-classifier",
                "1",
                "onnx",
                row,
                0,
                "setosa",
                {"setosa": 1.0},
                1.0,
            )
            for _ in range(MIN_ROWS + 10)
        ]
    )
    log.dispose()
    return s


def summary(detected: bool, share: float) -> dict[str, Any]:
    """What the monitoring pipeline returns (``monitoring.run.check``)."""
    features = {
        name: {"score": 0.001 if detected else 0.4, "drifted": detected, "method": "K-S p_value"}
        for name in get_project("iris").feature_names
    }
    return {
        "share": share, "detected": detected, "threshold_share": 0.3, "rows": 60, "reference_rows": 105,
        "drifted_features": [n for n, f in features.items() if f["drifted"]], "features": features,
        "model_version": "1", "reference_hash": "ab" * 32, "report_path": "/tmp/r.html", "record_id": 7,
    }  # fmt: skip


def actions(s) -> list[tuple[str, str]]:
    log = AuditLog.for_settings(s)
    try:
        return [
            (e.action, e.decision) for e in log.history(project="iris") if e.action.startswith("monitor.")
        ]
    finally:
        log.dispose()


def test_undrifted_traffic_starts_nothing(monitored, webhook) -> None:
    out = run_pass(monitored, get_project("iris"), lambda: summary(False, 0.0))
    assert out["action"] == "none" and out["follow_up"] is None
    assert actions(monitored) == [("monitor.drift", "clean")]
    jobs = JobStore.for_settings(monitored)
    assert jobs.latest("iris") is None
    jobs.dispose()
    assert webhook[1] == []


def test_drift_alerts_records_one_job_then_cools_down(monitored, webhook) -> None:
    spec = get_project("iris")
    first = run_pass(monitored, spec, lambda: summary(True, 1.0))
    assert first["action"] == "retrain" and first["episode"]["created"] is True
    job_id = first["episode"]["job_id"]
    assert first["episode"]["alert"] == "sent" and first["episode"]["state"] == "queued"  # for a worker
    (alert,) = webhook[1]
    assert alert["project"] == "iris" and alert["drift_record_id"] == 7 and "retraining" in alert["text"]

    # the same episode, drifted again: recorded, nothing started (a second monitor agrees)
    again = run_pass(monitored, spec, lambda: summary(True, 1.0), actor="monitor-b")
    assert again["action"] == "cooldown" and again["cooldown"]["episode"] == job_id
    assert again["follow_up"] == {
        "job_id": job_id,
        "state": "queued",
        "model_version": None,
        "action": "wait",
    }
    assert len(webhook[1]) == 1
    leases = LeaseStore.for_settings(monitored)
    holder, until = leases.holder(cooldown_lease("iris"))
    leases.dispose()
    assert holder == job_id and until > datetime.now(UTC)
    assert actions(monitored) == [
        ("monitor.drift", "detected"), ("monitor.retrain", "started"),
        ("monitor.drift", "detected"), ("monitor.cooldown", "skipped"),
    ]  # fmt: skip

    log = AuditLog.for_settings(monitored)
    events = [e for e in log.history(project="iris") if e.action.startswith("monitor.")]
    log.dispose()
    retrain = events[1]
    assert retrain.details["job_id"] == job_id and retrain.details["drift_record_id"] == 7
    assert retrain.from_version == "1" and events[0].details["reference_hash"] == "ab" * 32
    text = json.dumps([e.as_dict() for e in events])
    assert str(SECRET_VALUE) not in text and "token-in-path" not in text  # no raw input, no webhook URL


def test_a_failed_job_is_followed_up_once_and_shadows_nothing(monitored) -> None:
    spec = get_project("iris")
    zero = monitored.model_copy(update={"monitor_cooldown_s": 0.0})  # every drifted pass may start one
    job_id = run_pass(zero, spec, lambda: summary(True, 1.0))["episode"]["job_id"]
    jobs = JobStore.for_settings(zero)
    claimed = jobs.claim("test-runner", job_id=job_id)
    assert claimed is not None
    failure = JobResult(ok=False, error={"type": "GateFailed", "message": "model gate failed"})
    jobs.finish(job_id, "test-runner", failure, ["training…"])
    after = run_pass(zero, spec, lambda: summary(False, 0.0))
    assert after["follow_up"]["action"] == "skipped" and "failed" in after["follow_up"]["reason"]
    assert run_pass(zero, spec, lambda: summary(False, 0.0))["follow_up"]["action"] == "done"
    # no cooldown: the next drifted pass starts a new job (the single flight allows it: none active)
    fresh = run_pass(zero, spec, lambda: summary(True, 1.0))
    assert fresh["episode"]["created"] and fresh["episode"]["job_id"] != job_id
    jobs.dispose()
    assert actions(zero).count(("monitor.shadow", "skipped")) == 1


def test_a_running_retrain_is_joined_not_doubled(monitored) -> None:
    jobs = JobStore.for_settings(monitored)
    operator, created = jobs.submit("iris", lease_s=30, held=False)  # an operator's POST /retrain
    assert created
    out = run_pass(monitored, get_project("iris"), lambda: summary(True, 1.0))
    assert out["episode"] == {**out["episode"], "job_id": operator.id, "created": False}
    assert ("monitor.retrain", "joined") in actions(monitored)
    jobs.dispose()


def test_too_little_traffic_checks_nothing(settings) -> None:
    def check() -> dict[str, Any]:
        raise AssertionError("no drift check below the minimum of predictions")

    out = run_pass(settings, get_project("iris"), check)
    assert out["action"] == "wait" and f"fewer than the {MIN_ROWS}" in out["reason"]
    assert actions(settings) == []


def test_the_loop_goes_on_after_a_failed_pass_and_stops_on_request(monitored) -> None:
    from mlops.errors import NotFound

    stop = threading.Event()
    seen: list[Any] = []

    def one_pass() -> dict[str, Any]:
        if len(seen) == 0:
            raise NotFound("no model holds 'production'")
        return run_pass(monitored, get_project("iris"), lambda: summary(False, 0.0))

    def on_result(result: Any) -> None:
        seen.append(result)
        if len(seen) == 2:
            stop.set()

    assert every(0.01, one_pass, stop, on_result) == 2
    assert isinstance(seen[0], NotFound) and seen[1]["action"] == "none"
