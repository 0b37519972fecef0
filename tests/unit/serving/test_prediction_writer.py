"""The prediction log's writer: rows written in batches, drained at shutdown, never in a prediction's way."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi import HTTPException
from fastapi.testclient import TestClient
from tests.unit.serving.conftest import EXAMPLE, sample

from mlops.serving.app import create_app
from mlops.serving.prediction_writer import PredictionWriter
from mlops.stores.predictions import Labelled, Record, ScoringRecord, get_prediction, read_predictions


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


def _stalled(tmp_path) -> tuple[str, object]:
    """A SQLite URL whose file cannot be opened (a folder stands where it goes): the database is
    down until the folder is removed."""
    target = tmp_path / "log.db"
    target.mkdir()
    return f"sqlite:///{target}", target


def test_outage_then_recovery_loses_nothing(tmp_path) -> None:
    """Writes fail while the database is unreachable: the rows wait in the spool and are all written,
    once, when it is back."""
    url, target = _stalled(tmp_path)

    async def scenario() -> None:
        log = PredictionWriter(url, flush_s=0.02, spool_dir=tmp_path / "spool")
        log.start()
        for record in _records(10):
            log.submit(record)
        for _ in range(1000):  # bounded: the shipper has failed at least once
            await asyncio.sleep(0.01)
            if log.write_failures:
                break
        assert log.write_failures and log.spool is not None and log.spool.usage().rows == 10
        target.rmdir()  # the database is back
        await log.stop()

    dropped = sample("mlops_prediction_log_dropped_total")
    asyncio.run(scenario())
    assert sorted(read_predictions(url, "iris")["request_id"]) == sorted(f"r{i}" for i in range(10))
    assert sample("mlops_prediction_log_dropped_total") == dropped
    assert not list((tmp_path / "spool").iterdir())  # the writer's folder is gone with its segments


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


async def _replay(url: str, spool: Path) -> None:
    """A writer's start and stop: its shipper adopts what dead writers left in ``spool``."""
    log = PredictionWriter(url, flush_s=0.05, spool_dir=spool)
    log.start()
    await log.stop()


def test_rows_not_shipped_by_shutdown_stay_spooled_and_are_shipped_at_the_next_start(tmp_path) -> None:
    """Shutdown never waits on a dead database forever, and loses nothing: what the shipper could not
    write within ``drain_s`` stays in the spool; the next writer's shipper adopts and ships it."""
    url, target = _stalled(tmp_path)
    spool = tmp_path / "spool"

    async def first() -> int:
        log = PredictionWriter(url, flush_s=3600, drain_s=1, spool_dir=spool)
        log.start()
        for record in _records(7):
            log.submit(record)
        await log.stop()
        return len(log.buffer)

    dropped, written = (
        sample("mlops_prediction_log_dropped_total"),
        sample("mlops_prediction_log_written_total"),
    )
    assert asyncio.run(first()) == 0
    assert sorted(p.name.rpartition("-")[2] for p in spool.glob("*/*.seg")) == ["7.seg"]
    assert sample("mlops_prediction_log_dropped_total") == dropped
    target.rmdir()  # the database is back before the next start
    asyncio.run(_replay(url, spool))
    assert sorted(read_predictions(url, "iris")["request_id"]) == sorted(f"r{i}" for i in range(7))
    assert sample("mlops_prediction_log_written_total") - written == 7
    assert not list(spool.glob("*/*.seg"))


def test_beyond_the_spool_limit_records_are_dropped_and_counted(tmp_path) -> None:
    url, _ = _stalled(tmp_path)

    async def scenario() -> tuple[bool, int]:
        log = PredictionWriter(
            url, flush_s=3600, drain_s=0.5, spool_dir=tmp_path / "spool", spool_max_mb=1e-6
        )
        log.start()
        log.submit(_records(1)[0])
        await log._flush()  # one segment: the spool is over its (tiny) limit
        dropped = sample("mlops_prediction_log_dropped_total")
        for record in _records(5):
            log.submit(record)
        log.admit()  # not lossless: never refuses
        full = log.full
        await log.stop()
        return full, int(sample("mlops_prediction_log_dropped_total") - dropped)

    assert asyncio.run(scenario()) == (True, 5)


def test_lossless_a_full_spool_refuses_with_retry_after_and_keeps_what_it_admitted(tmp_path) -> None:
    url, target = _stalled(tmp_path)

    async def scenario() -> tuple[int, str]:
        log = PredictionWriter(
            url, flush_s=3600, drain_s=0.5, spool_dir=tmp_path / "spool", spool_max_mb=1e-6, lossless=True
        )
        log.start()
        log.admit()  # an empty spool admits
        log.submit(_records(1)[0])
        await log._flush()
        refused = sample("mlops_prediction_log_refused_total")
        with pytest.raises(HTTPException) as caught:
            log.admit()
        assert sample("mlops_prediction_log_refused_total") - refused == 1
        await log.stop()
        return caught.value.status_code, (caught.value.headers or {}).get("Retry-After", "")

    code, retry_after = asyncio.run(scenario())
    assert code == 503 and int(retry_after) > 0
    target.rmdir()
    asyncio.run(_replay(url, tmp_path / "spool"))
    assert list(read_predictions(url, "iris")["request_id"]) == ["r0"]  # what it admitted is logged


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


def test_lossless_service_answers_503_with_retry_after_never_an_unlogged_200(
    service_settings, tmp_path
) -> None:
    """The app end to end (the predict route calls ``admit()`` before scoring): the log's database is
    down and the spool's limit tiny; once the spool is full every request is refused with 503 and
    ``Retry-After``, and each request answered 200 is in the database once it is back."""
    target = tmp_path / "down" / "log.db"
    target.mkdir(parents=True)  # a folder where the database file goes: unreachable
    url = f"sqlite:///{target}"
    lossless = service_settings.model_copy(
        update={
            "prediction_log_url": url,
            "prediction_log_lossless": True,
            "prediction_log_spool_max_mb": 1e-6,
            "prediction_log_flush_s": 0.02,
        }
    )
    answered: list[str] = []
    refused = []
    with TestClient(create_app(lossless)) as c:
        for _ in range(500):  # bounded: the first flush fills the tiny spool
            r = c.post("/predict", json=EXAMPLE)
            if r.status_code == 200:
                answered.append(r.json()["request_id"])
            else:
                refused.append(r)
                if len(refused) == 3:
                    break
            time.sleep(0.005)
        batch = c.post("/predict/batch", json={"rows": [EXAMPLE] * 2})
    assert answered and len(refused) == 3
    assert {r.status_code for r in refused} == {503} and all(
        int(r.headers["Retry-After"]) > 0 for r in refused
    )
    assert batch.status_code == 503
    target.rmdir()  # the database is back: the next start ships what the last one spooled
    asyncio.run(_replay(url, lossless.prediction_spool_dir))
    assert sorted(read_predictions(url, "iris")["request_id"]) == sorted(answered)


def test_feedback_on_a_request_still_buffered_or_spooled(tmp_path) -> None:
    """A label may arrive before its prediction reached the database: it is written with the label,
    and the shipper's copy is skipped later (one row)."""
    url = f"sqlite:///{tmp_path}/log.db"

    async def scenario() -> tuple[object, object]:
        log = PredictionWriter(url, flush_s=3600, spool_dir=tmp_path / "spool")
        log.start()
        first, second = _records(2)
        log.submit(first)
        log.submit(second)
        buffered = log.record_feedback("r0", "iris", 0)  # still in memory
        await log._flush()  # r1 is in a spool segment now (the shipper may or may not have it)
        spooled = log.record_feedback("r1", "iris", 1)
        await log.stop()
        return buffered, spooled

    buffered, spooled = asyncio.run(scenario())
    assert isinstance(buffered, Labelled) and buffered.correct and buffered.version == "1"
    assert isinstance(spooled, Labelled) and not spooled.correct and spooled.version_labelled == 2
    assert sorted(read_predictions(url, "iris")["request_id"]) == ["r0", "r1"]
