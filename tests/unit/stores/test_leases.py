"""Leases on a real control database, SQLite and the machine's PostgreSQL: one holder at a time,
renewal by the holder, take-over after expiry, release; two holders racing from threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.control_db import control_databases

from mlops.stores.leases import LeaseStore


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LeaseStore]:
    with control_databases(request.param, tmp_path) as make:
        leases = LeaseStore(make())
        yield leases
        leases.dispose()


def test_one_holder_at_a_time_and_the_holder_renews(store: LeaseStore) -> None:
    assert store.acquire("guard:iris", "a", 30)
    assert not store.acquire("guard:iris", "b", 30)
    first = store.holder("guard:iris")
    assert first is not None and first[0] == "a"
    assert store.acquire("guard:iris", "a", 60)  # renewal pushes the expiry out
    renewed = store.holder("guard:iris")
    assert renewed is not None and renewed[0] == "a" and renewed[1] > first[1]
    assert store.acquire("guard:readmission", "b", 30)  # another name is another lease


def test_an_expired_lease_is_taken_over(store: LeaseStore) -> None:
    assert store.acquire("guard:iris", "a", 0.2)
    time.sleep(0.4)
    assert store.acquire("guard:iris", "b", 30)
    assert not store.acquire("guard:iris", "a", 30)
    holder = store.holder("guard:iris")
    assert holder is not None and holder[0] == "b"


def test_release_frees_it_for_the_next_holder_at_once(store: LeaseStore) -> None:
    assert store.acquire("guard:iris", "a", 30)
    assert not store.release("guard:iris", "b")  # not b's to release
    assert store.release("guard:iris", "a")
    assert store.holder("guard:iris") is None
    assert store.acquire("guard:iris", "b", 30)


def test_two_holders_racing_for_a_free_lease_get_one_leader(store: LeaseStore) -> None:
    won: list[str] = []
    barrier = threading.Barrier(4)

    def take(holder: str) -> None:
        barrier.wait()
        if store.acquire("guard:race", holder, 30):
            won.append(holder)

    threads = [threading.Thread(target=take, args=(f"h{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    holder = store.holder("guard:race")
    assert holder is not None and holder[0] == won[0]


def test_a_non_positive_ttl_is_refused(store: LeaseStore) -> None:
    with pytest.raises(ValueError, match="positive ttl"):
        store.acquire("guard:iris", "a", 0)
