"""The prediction log's writer: rows written in batches, drained at shutdown, never in a prediction's way."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from fastapi.testclient import TestClient
from tests.unit.serving.conftest import EXAMPLE, sample

from mlops.serving.app import create_app
from mlops.serving.prediction_writer import PredictionWriter
from mlops.stores.predictions import Record, ScoringRecord, get_prediction, read_predictions


def test_rows_are_written_and_drained_on_shutdown(service_settings) -> None:
    url = service_settings.prediction_log_db_url
    with TestClient(create_app(service_settings)) as c:
        ids = [c.post("/predict", json=EXAMPLE).json()["request_id"] for _ in range(20)]
        ids += [
            p["request_id"]
            for p in c.post("/predict/batch", json={"rows": [EXAMPLE] * 5}).json()["predictions"]
        ]
    row = get_prediction(url, ids[0])
    assert row is not None and row["model_version"] == "1" and row["inputs"] == EXAMPLE
    assert row["label"] == "setosa" and row["prediction"] == 0 and row["runtime"] == "onnx"
    assert row["model_name"] == "iris-classifier" and row["latency_ms"] >= 0 and row["project"] == "iris"
    assert set(row["probabilities"]) == {"setosa", "versicolor", "virginica"}
    at = datetime.fromisoformat(row["at"])  # UTC on every backend (SQLite stores no zone: read back as UTC)
    assert at.utcoffset() == timedelta(0) and abs(datetime.now(UTC) - at) < timedelta(minutes=5)
    assert all(get_prediction(url, i) for i in ids)
    frame = read_predictions(url, "iris")
    assert len(frame) == 25 and {*EXAMPLE, "request_id", "model_version", "label"} <= set(frame.columns)
    assert len(read_predictions(url, "iris", limit=3)) == 3
    assert get_prediction(url, "unknown") is None


def test_predictions_survive_a_dead_prediction_database(service_settings) -> None:
    dead = service_settings.model_copy(
        update={"prediction_log_url": "postgresql://nobody@127.0.0.1:1/none", "prediction_log_flush_s": 0.05}
    )
    written = sample("mlops_prediction_log_written_total")
    with TestClient(create_app(dead)) as c:
        codes = [c.post("/predict", json=EXAMPLE).status_code for _ in range(50)]
        assert codes == [200] * 50
        assert c.get("/ready").status_code == 200
    assert sample("mlops_prediction_log_written_total") == written


def test_a_full_queue_drops_and_counts_without_blocking() -> None:
    async def scenario() -> tuple[int, float]:
        log = PredictionWriter("sqlite:///:memory:", max_queue=3)  # not started: nothing drains the queue
        dropped = sample("mlops_prediction_log_dropped_total")
        for i in range(5):
            log.submit(
                Record(f"r{i}", datetime.now(UTC), "iris", "m", "1", "onnx", {}, 0, "a", {"a": 1.0}, 0.1)
            )
        return len(log.buffer), sample("mlops_prediction_log_dropped_total") - dropped

    depth, dropped = asyncio.run(scenario())
    assert depth == 3 and dropped == 2


def test_outage_then_recovery_loses_nothing(tmp_path) -> None:
    """Writes fail while the database is unreachable and succeed, without loss, once it is back."""
    target = tmp_path / "later" / "log.db"
    url = f"sqlite:///{target}"

    async def scenario() -> None:
        log = PredictionWriter(url, flush_s=0.02)
        log.store.engine.dispose()
        import sqlalchemy as sa

        log.store.engine = sa.create_engine(f"sqlite:///{tmp_path}/missing/dir/log.db")  # unreachable
        log.start()
        for i in range(10):
            log.submit(
                Record(f"r{i}", datetime.now(UTC), "iris", "m", "1", "onnx", {}, 0, "a", {"a": 1.0}, 0.1)
            )
        for _ in range(100):  # bounded: the writer has failed at least once
            await asyncio.sleep(0.01)
            if log.write_failures:
                break
        target.parent.mkdir(exist_ok=True)
        log.store.engine = sa.create_engine(url)  # the database is back
        await log.stop()

    asyncio.run(scenario())
    assert len(read_predictions(url, "iris")) == 10


def _records(n: int) -> list[Record]:
    now = datetime.now(UTC)
    return [
        Record(f"r{i}", now, "iris", "m", "1", "onnx", {"x": i}, 0, "a", {"a": 1.0}, 0.1) for i in range(n)
    ]


def test_stop_writes_every_queued_record(tmp_path) -> None:
    """A graceful shutdown drains the queue: records buffered since the writer's last wake-up, in
    several chunks, are all in the database once ``stop`` returns (the restart test relies on it)."""
    url = f"sqlite:///{tmp_path}/log.db"

    async def scenario() -> int:
        log = PredictionWriter(url, flush_s=3600, batch=100)  # the writer would not wake before stop
        log.start()
        await asyncio.sleep(0)  # the writer is waiting for its next wake-up
        for record in _records(250):
            log.submit(record)
        await log.stop()
        return len(log.buffer)

    written, dropped = (
        sample("mlops_prediction_log_written_total"),
        sample("mlops_prediction_log_dropped_total"),
    )
    assert asyncio.run(scenario()) == 0
    assert sorted(read_predictions(url, "iris")["request_id"]) == sorted(f"r{i}" for i in range(250))
    assert sample("mlops_prediction_log_written_total") - written == 250
    assert sample("mlops_prediction_log_dropped_total") == dropped


def test_stop_gives_up_on_an_unreachable_database_and_counts_the_loss() -> None:
    """Shutdown never waits on a dead database forever: what could not be written is counted."""

    async def scenario() -> int:
        log = PredictionWriter("postgresql://nobody@127.0.0.1:1/none", flush_s=3600, drain_s=30)
        log.start()
        for record in _records(7):
            log.submit(record)
        await log.stop()
        return len(log.buffer)

    dropped = sample("mlops_prediction_log_dropped_total")
    assert asyncio.run(scenario()) == 0
    assert sample("mlops_prediction_log_dropped_total") - dropped == 7


def test_shadow_scorings_are_written_beside_the_predictions(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/log.db"

    async def scenario() -> None:
        log = PredictionWriter(url, flush_s=3600)
        log.start()
        now = datetime.now(UTC)
        for record in _records(3):
            log.submit(record)
            log.submit_scoring(
                ScoringRecord(record.request_id, now, "iris", "m", "2", "shadow", 1, "b", {"b": 0.7}, 0.2)
            )
        await log.stop()

    asyncio.run(scenario())
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT request_id, model_version, role FROM scorings ORDER BY id")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [(f"r{i}", "2", "shadow") for i in range(3)]
    assert len(read_predictions(url, "iris")) == 3
