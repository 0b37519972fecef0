"""The rollout guard of the service (``serving/guard.py``) on real stores, SQLite and PostgreSQL: of
two workers only the lease holder checks; the leader ends a failing canary and counts the breach;
the lease passes on when the leader stops; the background task survives a store outage and stops
cleanly."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from tests.support.control_db import control_databases
from tests.support.rollout_evidence import EvidenceWriter

from mlops.serving import guard
from mlops.settings import Settings
from mlops.stores import migrate
from mlops.stores.leases import LeaseStore
from mlops.stores.rollouts import RolloutStore


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """The control database and the prediction log on SQLite files, or both in one fresh database
    of the machine's PostgreSQL (the lease's compare-and-set on the server's clock)."""
    urls: dict[str, str] = {}
    with control_databases(request.param, tmp_path) as make:
        if request.param == "postgresql":
            url = make()
            migrate.upgrade(url, ["predictions"])
            urls = {"audit_db_url": url, "prediction_log_url": url}
        yield Settings(
            home=tmp_path / "state",
            actor="pytest",
            rollout_guard_interval_s=0.05,
            rollout_guard_lease_s=30,
            rollout_min_requests=50,
            **urls,
        )


def start_canary(settings: Settings) -> int:
    store = RolloutStore.for_settings(settings)
    r = store.start(
        project="iris",
        model_name="iris-classifier",
        candidate="2",
        baseline="1",
        mode="canary",
        percent=10,
        actor="t",
    )
    store.dispose()
    return r.id


def rollbacks(breach: str) -> float:
    return (
        REGISTRY.get_sample_value("mlops_rollout_rollbacks_total", {"project": "iris", "breach": breach})
        or 0.0
    )


def test_only_the_lease_holder_checks_and_it_rolls_back_a_failing_canary(settings: Settings) -> None:
    start_canary(settings)
    writer = EvidenceWriter(settings.prediction_log_db_url)
    writer.canary("2", "1", ok=5, failed=20)
    writer.dispose()
    before = rollbacks("error_rate")
    a, b = guard.GuardRound(settings, "iris", "worker-a"), guard.GuardRound(settings, "iris", "worker-b")
    assert a.leases.acquire(guard.lease_name("iris"), "worker-a", 30)  # a leads
    assert b() is None and not b.leader  # b is no leader: it checks nothing
    assert RolloutStore.for_settings(settings).active("iris") is not None
    result = a()
    assert a.leader and result is not None and result["breach"] == "error_rate"
    assert RolloutStore.for_settings(settings).latest("iris").state == "rolled_back"
    assert rollbacks("error_rate") == before + 1
    assert REGISTRY.get_sample_value("mlops_rollout_guard_leader") == 1.0
    a.release()
    assert b() is None and b.leader  # the lease passed on at once: b leads now
    b.release()
    a.dispose()
    b.dispose()


def test_the_background_guard_leads_checks_and_releases_on_stop(settings: Settings) -> None:
    start_canary(settings)

    async def scenario() -> tuple[bool, dict | None]:
        g = guard.RolloutGuard(settings, "iris")
        g.start()
        writer = EvidenceWriter(settings.prediction_log_db_url)
        writer.canary("2", "1", failed=20)
        writer.dispose()
        for _ in range(200):
            await asyncio.sleep(0.05)
            if g.last is not None:
                break
        leader = g.leader
        await g.stop()
        return leader, g.last

    leader, last = asyncio.run(scenario())
    assert leader and last is not None and last["breach"] == "error_rate"
    assert LeaseStore.for_settings(settings).holder(guard.lease_name("iris")) is None  # released
    assert REGISTRY.get_sample_value("mlops_rollout_guard_leader") == 0.0


def test_a_store_outage_never_reaches_the_service(settings: Settings) -> None:
    down = settings.model_copy(update={"audit_db_url": "postgresql://postgres@127.0.0.1:1/control"})
    round_ = guard.GuardRound(down, "iris")
    assert round_() is None and not round_.leader

    async def scenario() -> None:
        g = guard.RolloutGuard(down, "iris")
        g.start()
        await asyncio.sleep(0.2)  # several failing rounds
        await g.stop()

    asyncio.run(scenario())


def test_the_foreground_loop_runs_rounds_and_returns_its_rollbacks(settings: Settings) -> None:
    assert guard.run(settings, "iris", once=True) == []
    start_canary(settings)
    writer = EvidenceWriter(settings.prediction_log_db_url)
    writer.canary("2", "1", failed=20)
    writer.dispose()
    done = guard.run(settings, "iris", rounds=2)
    assert [d["breach"] for d in done] == ["error_rate"]
