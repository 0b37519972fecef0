"""The prediction log's store on SQLite: batched inserts that skip replays, feedback, readers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from mlops.stores.predictions import PredictionStore, Record, get_prediction, read_predictions


def _record(i: int, *, project: str = "iris", at: datetime | None = None) -> Record:
    return Record(
        f"r{i}", at or datetime.now(UTC), project, "m", "1", "onnx", {"x": i}, i % 2, "a", {"a": 0.9}, 0.5
    )


def test_readers_before_any_prediction(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/empty.db"
    assert read_predictions(url, "iris").empty and get_prediction(url, "x") is None


def test_a_replayed_batch_is_skipped_not_duplicated(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/log.db"
    store = PredictionStore(url)
    store.insert([_record(i) for i in range(5)])
    store.insert([_record(i) for i in range(3, 8)])  # r3, r4 were written already (a retried batch)
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM predictions")).scalar_one() == 8
    store.dispose()
    frame = read_predictions(url, "iris")
    assert sorted(frame["request_id"]) == [f"r{i}" for i in range(8)] and "x" in frame.columns


def test_rows_read_back_as_written_with_utc_times(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/log.db"
    at = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    store = PredictionStore(url)
    store.insert([_record(1, at=at), _record(2, project="readmission", at=at + timedelta(seconds=1))])
    store.dispose()
    row = get_prediction(url, "r1")
    assert row == {
        "request_id": "r1",
        "at": "2026-03-01T12:30:00+00:00",
        "project": "iris",
        "model_name": "m",
        "model_version": "1",
        "runtime": "onnx",
        "inputs": {"x": 1},
        "prediction": 1,
        "label": "a",
        "probabilities": {"a": 0.9},
        "latency_ms": 0.5,
    }
    assert list(read_predictions(url, "readmission")["request_id"]) == ["r2"]


def test_latest_first_and_limit(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/log.db"
    start = datetime(2026, 3, 1, tzinfo=UTC)
    store = PredictionStore(url)
    store.insert([_record(i, at=start + timedelta(minutes=i)) for i in range(6)])
    store.dispose()
    assert list(read_predictions(url, "iris", limit=2)["request_id"]) == ["r5", "r4"]


def test_feedback_counts_live_accuracy_and_refuses_unknown_ids(tmp_path) -> None:
    store = PredictionStore(f"sqlite:///{tmp_path}/log.db")
    store.insert([_record(1), _record(2)])  # predictions 1 and 0
    assert store.record_feedback("r1", "iris", 1) == (True, 1.0)
    assert store.record_feedback("r2", "iris", 1) == (False, 0.5)
    assert store.record_feedback("not-logged", "iris", 1) is None
    # a prediction still in the writer's memory: its predicted class is given, not read
    assert store.record_feedback("r9", "iris", 2, predicted=2) == (True, 2 / 3)
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT request_id, correct FROM feedback ORDER BY id")).all()
    assert [(r[0], bool(r[1])) for r in rows] == [("r1", True), ("r2", False), ("r9", True)]
    store.dispose()
