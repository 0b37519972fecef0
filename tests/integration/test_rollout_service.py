"""Rollouts on a real service under load (`mlops serve --workers 2`): shadow, then canary over a fixed
set of routing keys, a ramp, an abort; every worker follows the shared record, no request fails."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import httpx
import pytest

from tests.integration.processes import (
    EXAMPLE,
    LoadGenerator,
    failed,
    fresh_settings,
    metric_samples,
    promote_new_version,
    start_service,
)

pytestmark = pytest.mark.integration

POLL_S = 0.5
KEYS = [f"client-{i:04d}" for i in range(2000)]


def _within_99(count: int, n: int, percent: float) -> bool:
    """``count`` of ``n`` within the 99 % binomial interval around ``percent`` (normal approximation)."""
    p = percent / 100
    half = 2.576 * math.sqrt(n * p * (1 - p))
    return n * p - half <= count <= n * p + half


def _total(base: str, name: str, **labels: str) -> float:
    return sum(
        s.value for s in metric_samples(base, name) if all(s.labels.get(k) == v for k, v in labels.items())
    )


def _until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _every_worker_shows(base: str, tag: str | None, timeout: float = 15.0) -> bool:
    """40 answers in a row on fresh connections (so from both workers) carry the rollout tag ``tag``
    (``X-Rollout``: id.generation; None: no rollout)."""

    def seen() -> bool:
        with httpx.Client(base_url=base, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as c:
            return all(c.post("/predict", json=EXAMPLE).headers.get("x-rollout") == tag for _ in range(40))

    return _until(seen, timeout)


def _versions_by_key(base: str) -> dict[str, str]:
    """The version answering each routing key, each request on a fresh connection (either worker)."""
    out: dict[str, str] = {}
    with httpx.Client(base_url=base, timeout=10, limits=httpx.Limits(max_keepalive_connections=0)) as c:
        for key in KEYS:
            r = c.post("/predict", json=EXAMPLE, headers={"X-Routing-Key": key})
            assert r.status_code == 200, r.text
            assert r.headers["x-model-version"] == r.json()["model_version"]
            out[key] = r.json()["model_version"]
    return out


def test_shadow_then_canary_ramp_then_abort_under_load(tmp_path) -> None:
    from mlops.registry import Registry
    from mlops.stores.rollouts import RolloutStore
    from tests.support.training import train_register_promote

    settings = fresh_settings(tmp_path)
    production = promote_new_version(settings, seed=settings.seed)
    registry = Registry(settings, "iris")
    candidate = str(train_register_promote(settings, "iris", seed=settings.seed + 7)["model"]["version"])
    if registry.alias_version("production") != production:  # the candidate must not be production yet
        registry.move_alias("production", expected=registry.alias_version("production"), new=production)
    assert candidate != production
    store = RolloutStore.for_settings(settings)

    proc, base = start_service(settings.home, tmp_path, workers=2, MLOPS_POLL_INTERVAL_S=str(POLL_S))
    try:
        with LoadGenerator(base, threads=4, max_seconds=600, interval=0.01) as load:
            assert load.wait_for(lambda rs: len(rs) >= 50, timeout=30), proc.tail()
            # shadow on every request: agreement and the candidate's latency in /metrics within 5 s
            registry.set_alias("candidate", candidate)
            rollout = store.start(
                project="iris", model_name=registry.name, candidate=candidate, baseline=production,
                mode="shadow", percent=100, actor="pytest", reason="integration test",
            )  # fmt: skip
            started = time.monotonic()
            assert _until(
                lambda: (
                    _total(base, "mlops_shadow_agreement_total", version=candidate) > 0
                    and _total(base, "mlops_candidate_scoring_duration_seconds_count", version=candidate) > 0
                ),
                timeout=5.0,
            ), proc.tail()
            shadow_seen_s = time.monotonic() - started
            assert all(r.version == production for r in load.snapshot() if r.status == 200)

            # canary on 10 % of the routing keys
            rollout = store.update(
                rollout.id, expected_generation=rollout.generation, mode="canary", percent=10
            )
            assert _every_worker_shows(base, f"{rollout.id}.{rollout.generation}"), proc.tail()
            at_10 = _versions_by_key(base)
            assert set(at_10.values()) == {production, candidate}
            on_candidate = {k for k, v in at_10.items() if v == candidate}
            assert _within_99(len(on_candidate), len(KEYS), 10), len(on_candidate)
            assert _versions_by_key(base) == at_10  # the same key, the same version (either worker)

            # ramp to 25 %: every key that was on the candidate stays there
            rollout = store.update(rollout.id, expected_generation=rollout.generation, percent=25)
            assert _every_worker_shows(base, f"{rollout.id}.{rollout.generation}"), proc.tail()
            at_25 = _versions_by_key(base)
            ramped = {k for k, v in at_25.items() if v == candidate}
            assert on_candidate <= ramped and _within_99(len(ramped), len(KEYS), 25), len(ramped)

            # abort: production answers everything again
            store.end(rollout.id, expected_generation=rollout.generation, state="aborted")
            assert _every_worker_shows(base, None), proc.tail()
            assert set(_versions_by_key(base).values()) == {production}
            results = load.snapshot()
        canary_ok = _total(
            base, "mlops_candidate_scorings_total", version=candidate, mode="canary", result="ok"
        )
        percent = [s for s in metric_samples(base, "mlops_rollout_percent") if s.value > 0]
    finally:
        proc.stop()
        store.dispose()
    assert len(results) > 100 and failed(results) == [], failed(results)[:3]
    assert shadow_seen_s <= 5.0
    assert canary_ok >= len(on_candidate) + len(ramped)
    assert percent == []  # the gauge of the ended rollout is zeroed on every worker
