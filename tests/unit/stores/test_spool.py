"""The prediction log's spool and shipper: segments written whole, shipped once, adopted when their
worker is gone, kept while the database is down."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from mlops.stores.predictions import Record, ScoringRecord, get_prediction
from mlops.stores.shipper import Shipper
from mlops.stores.spool import Spool

AT = datetime(2026, 3, 1, 12, 30, 0, 250000, tzinfo=UTC)


def _rows(n: int, start: int = 0) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    answers = [
        Record(f"r{i}", AT, "iris", "m", "1", "onnx", {"x": i}, 1, "b", {"a": 0.25, "b": 0.75}, 0.5).values()
        for i in range(start, start + n)
    ]
    besides = [
        ScoringRecord(f"r{i}", AT, "iris", "m", "2", "shadow", 0, "a", {"a": 0.6, "b": 0.4}, 0.7).values()
        for i in range(start, start + n)
    ]
    return answers, besides


def test_segments_are_counted_read_in_order_and_deleted(tmp_path) -> None:
    spool = Spool.claim(tmp_path / "spool")
    sizes = [spool.append(*_rows(3)), spool.append(*_rows(2, start=3))]
    usage = spool.usage()
    assert (usage.rows, usage.bytes, usage.total_bytes) == (10, sum(sizes), sum(sizes))
    first = spool.read(max_rows=6)  # the first segment only: the second would exceed 6 rows
    assert (len(first.paths), first.rows) == (1, 6)
    everything = spool.read(max_rows=1)  # at least one segment, whatever the limit
    assert everything.paths == first.paths
    spool.delete(first.paths)
    assert spool.read(max_rows=100).rows == 4
    spool.delete(spool.segments())
    spool.release()
    assert not (tmp_path / "spool" / spool.owner).exists()  # an empty folder goes with its owner


def test_a_dead_owners_segments_are_adopted_a_live_owners_are_not(tmp_path) -> None:
    root = tmp_path / "spool"
    dead, alive, adopter = Spool.claim(root), Spool.claim(root), Spool.claim(root)
    dead.append(*_rows(2))
    alive.append(*_rows(1))
    dead.release()  # as the kernel does when a process dies: its lock is gone, its segments stay
    (root / ".being-claimed").mkdir()  # a folder not yet renamed into place is never touched
    assert adopter.adopt() == 1
    assert [adopter.read(100).rows, alive.read(100).rows] == [4, 2]
    assert not dead.folder.exists() and (root / ".being-claimed").exists()
    assert root.joinpath(alive.owner).exists()


def test_the_shipper_keeps_segments_while_the_database_is_down_then_ships_them_once(tmp_path) -> None:
    target = tmp_path / "log.db"
    target.mkdir()  # a folder where the database file goes: SQLite cannot open it
    url = f"sqlite:///{target}"
    spool = Spool.claim(tmp_path / "spool")
    spool.append(*_rows(3))
    shipper = Shipper(url, spool)
    assert shipper.ship_once() == 0 and shipper.failures == 1
    assert spool.read_status()["failures"] == 1 and spool.usage().rows == 6
    target.rmdir()  # the database is back
    spool.append(*_rows(2, start=2))  # r2 again (a replayed batch) and r3
    assert shipper.ship_once() == 10 and spool.usage().rows == 0
    assert spool.read_status() == {"written": 8, "failures": 0, "error": None}  # r2 written once
    shipper.store.dispose()
    row = get_prediction(url, "r1")
    assert row is not None and row["at"] == AT.isoformat() and row["inputs"] == {"x": 1}
    assert row["probabilities"] == {"a": 0.25, "b": 0.75} and row["prediction"] == 1
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        scorings = conn.execute(
            sa.text("SELECT request_id, model_version, probabilities FROM scorings")
        ).all()
    engine.dispose()
    assert sorted(tuple(r) for r in scorings) == [(f"r{i}", "2", '{"a":0.6,"b":0.4}') for i in range(4)]
