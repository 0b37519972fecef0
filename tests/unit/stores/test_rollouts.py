"""The rollout record (``stores/rollouts.py``) on a real control database, SQLite and PostgreSQL:
one active rollout per project, compare-and-set on generation for every change, ending frees the
project for the next one, and a change can share the caller's transaction."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.control_db import control_databases

from mlops.stores.rollouts import RolloutConflict, RolloutStore


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RolloutStore]:
    with control_databases(request.param, tmp_path) as make:
        rollouts = RolloutStore(make())
        yield rollouts
        rollouts.dispose()


def start(store: RolloutStore, project: str = "iris", candidate: str = "2", **kw):
    values = {"mode": "canary", "percent": 5.0, "actor": "ana", "reason": "try", **kw}
    return store.start(
        project=project, model_name=f"{project}-classifier", candidate=candidate, baseline="1", **values
    )


def test_start_then_read_it_back(store: RolloutStore) -> None:
    assert store.active("iris") is None and store.latest("iris") is None
    r = start(store)
    assert (r.candidate, r.baseline, r.mode, r.percent, r.state, r.generation) == (
        "2",
        "1",
        "canary",
        5.0,
        "active",
        1,
    )
    assert store.active("iris") == r == store.get(r.id) == store.latest("iris")
    assert r.started_at.tzinfo is not None and r.as_dict()["ended_at"] is None


def test_a_second_active_rollout_of_a_project_is_a_conflict(store: RolloutStore) -> None:
    first = start(store)
    with pytest.raises(RolloutConflict, match=f"rollout {first.id} of version 2 is already active"):
        start(store, candidate="3")
    other = start(store, project="readmission")  # another project is independent
    assert other.active and store.active("iris") == first


def test_update_is_a_compare_and_set_on_generation(store: RolloutStore) -> None:
    r = start(store)
    ramped = store.update(r.id, expected_generation=1, percent=25.0)
    assert (ramped.percent, ramped.generation) == (25.0, 2)
    with pytest.raises(RolloutConflict, match="changed meanwhile"):
        store.update(r.id, expected_generation=1, percent=50.0)  # a stale read
    assert store.active("iris").percent == 25.0
    with pytest.raises(ValueError, match="mode"):
        store.update(r.id, expected_generation=2, mode="blue")  # type: ignore[arg-type]


def test_end_frees_the_project_and_keeps_the_incident(store: RolloutStore) -> None:
    r = start(store)
    ended = store.end(r.id, expected_generation=1, state="rolled_back", incident={"breach": "error_rate"})
    assert (ended.state, ended.active, ended.incident) == ("rolled_back", False, {"breach": "error_rate"})
    assert ended.ended_at is not None and store.active("iris") is None
    assert store.latest("iris") == ended
    with pytest.raises(RolloutConflict):  # ended: no further change
        store.end(r.id, expected_generation=2, state="aborted")
    again = start(store, candidate="3")
    assert again.id != r.id and store.active("iris") == again
    with pytest.raises(ValueError, match="state"):
        store.end(again.id, expected_generation=1, state="active")  # type: ignore[arg-type]
    with pytest.raises(RolloutConflict, match="no rollout 999"):
        store.end(999, expected_generation=1, state="aborted")


def test_a_change_joins_the_callers_transaction(store: RolloutStore) -> None:
    r = start(store)
    with pytest.raises(RuntimeError), store.transaction() as conn:
        store.end(r.id, expected_generation=1, state="aborted", conn=conn)
        raise RuntimeError("the audit row failed")  # rolls the end back with it
    assert store.active("iris") == r


def test_two_racing_starts_leave_one_active_rollout(store: RolloutStore) -> None:
    import threading

    barrier = threading.Barrier(4)
    won: list[int] = []
    lost: list[str] = []

    def race(candidate: str) -> None:
        barrier.wait()
        try:
            won.append(start(store, candidate=candidate).id)
        except RolloutConflict as exc:
            lost.append(str(exc))

    threads = [threading.Thread(target=race, args=(str(v),)) for v in range(2, 6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(lost) == 3 and all("already active" in m for m in lost)
    assert store.active("iris").id == won[0]


def test_an_operator_and_the_guard_ending_from_one_read_end_it_once(store: RolloutStore) -> None:
    r = start(store)
    store.end(r.id, expected_generation=r.generation, state="rolled_back", incident={"breach": "latency"})
    with pytest.raises(RolloutConflict, match="state rolled_back"):
        store.end(r.id, expected_generation=r.generation, state="aborted")
    assert store.get(r.id).incident == {"breach": "latency"}
