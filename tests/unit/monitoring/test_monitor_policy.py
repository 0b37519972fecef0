"""The monitoring policy (``monitoring/policy.py``): undrifted traffic starts nothing, drift within the
cooldown starts nothing, a new episode retrains (or only alerts below the retrain share), and a
finished retrain shadows its new version unless it failed or training already promoted it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mlops.errors import UsageError
from mlops.monitoring import policy
from mlops.monitoring.loop import parse_duration

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def drift(share: float, detected: bool) -> dict:
    return {"share": share, "detected": detected, "rows": 1000, "threshold_share": 0.3, "model_version": "3"}


def test_undrifted_traffic_starts_nothing_whatever_the_cooldown() -> None:
    for cooling in (None, NOW - timedelta(hours=1), NOW + timedelta(hours=1)):
        verdict = policy.on_drift(drift(0.1, False), retrain_share=0.0, cooling_until=cooling, now=NOW)
        assert verdict.action == "none" and "no drift: 10% of features" in verdict.reason


def test_drift_starts_a_retrain_unless_the_episode_is_cooling_down() -> None:
    fresh = policy.on_drift(drift(0.5, True), retrain_share=0.0, cooling_until=None, now=NOW)
    assert fresh.action == "retrain" and "v3's training data" in fresh.reason
    lapsed = policy.on_drift(drift(0.5, True), retrain_share=0.0, cooling_until=NOW, now=NOW)
    assert lapsed.action == "retrain"  # the cooldown ends at its instant
    cooling = policy.on_drift(
        drift(0.5, True), retrain_share=0.0, cooling_until=NOW + timedelta(minutes=5), now=NOW
    )
    assert cooling.action == "cooldown" and "cooldown until 2026-12-01T12:05:00+00:00" in cooling.reason


def test_below_the_retrain_share_drift_only_alerts() -> None:
    verdict = policy.on_drift(drift(0.4, True), retrain_share=0.6, cooling_until=None, now=NOW)
    assert verdict.action == "alert" and "below the retrain share 60%" in verdict.reason
    above = policy.on_drift(drift(0.6, True), retrain_share=0.6, cooling_until=None, now=NOW)
    assert above.action == "retrain"


@pytest.mark.parametrize(
    ("state", "version", "served", "action", "said"),
    [
        ("queued", None, "1", "wait", "queued"),
        ("running", None, "1", "wait", "running"),
        ("failed", None, "1", "skip", "boom"),
        ("succeeded", None, "1", "skip", "without registering"),
        ("succeeded", "2", "2", "skip", "promoted v2 itself"),
        ("succeeded", "2", "1", "shadow", "v2 proves itself in shadow beside v1"),
        (
            "succeeded",
            "2",
            None,
            "shadow",
            "no version is served yet",
        ),  # rollout.start refuses it, with its reason
    ],
)
def test_after_the_job(state: str, version: str | None, served: str | None, action: str, said: str) -> None:
    decided = policy.after_job(state, version, served, error="boom")
    assert decided.action == action and said in decided.reason


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("10m", 600), ("1h", 3600), ("1.5m", 90), (" 2H ", 7200)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10", "0s", "-5m", "ten minutes", "5d", "1h30m"])
def test_a_bad_duration_is_a_usage_error_with_the_fix(text: str) -> None:
    with pytest.raises(UsageError) as refused:
        parse_duration(text)
    assert "30s, 10m or 1h" in refused.value.hint
