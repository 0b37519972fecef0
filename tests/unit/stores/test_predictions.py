"""The prediction log's store on SQLite: batched inserts that skip replays, feedback, readers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from mlops.stores.predictions import (
    PredictionStore,
    Record,
    ScoringRecord,
    get_prediction,
    read_predictions,
)


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
        "trace_id": None,
        "subject_hash": None,
    }
    assert list(read_predictions(url, "readmission")["request_id"]) == ["r2"]


def test_latest_first_and_limit(tmp_path) -> None:
    url = f"sqlite:///{tmp_path}/log.db"
    start = datetime(2026, 3, 1, tzinfo=UTC)
    store = PredictionStore(url)
    store.insert([_record(i, at=start + timedelta(minutes=i)) for i in range(6)])
    store.dispose()
    assert list(read_predictions(url, "iris", limit=2)["request_id"]) == ["r5", "r4"]


def _record_of(version: str, i: int, prediction: int) -> Record:
    return Record(
        f"r{i}", datetime.now(UTC), "iris", "m", version, "onnx", {"x": i}, prediction, "a", {}, 0.5
    )


def test_feedback_counts_live_accuracy_per_version_and_refuses_unknown_ids(tmp_path) -> None:
    store = PredictionStore(f"sqlite:///{tmp_path}/log.db")
    store.insert([_record(1), _record(2)])  # version 1 predicted 1 and 0
    first = store.record_feedback("r1", "iris", 1)
    assert first is not None and (first.version, first.correct, first.accuracy) == ("1", True, 1.0)
    second = store.record_feedback("r2", "iris", 1)
    assert second is not None and (second.correct, second.version_correct, second.version_labelled) == (
        False,
        1,
        2,
    )
    assert store.record_feedback("not-logged", "iris", 1) is None
    # a prediction still in the writer's memory (version 2): written with its label, counted for version 2
    pending = store.record_feedback("r9", "iris", 2, pending=_record_of("2", 9, 2))
    assert pending is not None and (pending.version, pending.accuracy, pending.version_labelled) == (
        "2",
        1.0,
        1,
    )
    store.insert([_record_of("2", 9, 2)])  # the batch that carried it: skipped, not duplicated
    assert store.live_accuracy("iris") == {"1": (1, 2), "2": (1, 1)}
    assert store.live_accuracy("readmission") == {}
    store.dispose()


def test_a_second_label_for_a_request_replaces_the_first(tmp_path) -> None:
    store = PredictionStore(f"sqlite:///{tmp_path}/log.db")
    store.insert([_record(1)])  # predicted 1
    assert store.record_feedback("r1", "iris", 1).accuracy == 1.0  # type: ignore[union-attr]
    again = store.record_feedback("r1", "iris", 0)  # the labeller corrects itself
    assert again is not None and (again.correct, again.version_correct, again.version_labelled) == (
        False,
        0,
        1,
    )
    assert store.live_accuracy("iris") == {"1": (0, 1)}
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT request_id, true_label, correct FROM feedback")).all()
    assert [(r[0], r[1], bool(r[2])) for r in rows] == [("r1", 0, False)]
    store.dispose()


def test_live_accuracy_joins_every_scoring_of_a_request(tmp_path) -> None:
    """Versions are told apart by the prediction rows, not by the label: one label, each version judged."""
    store = PredictionStore(f"sqlite:///{tmp_path}/log.db")
    store.insert([_record_of("1", i, 0) for i in range(3)] + [_record_of("2", i, 1) for i in range(3, 7)])
    for i in range(7):
        store.record_feedback(f"r{i}", "iris", 1 if i % 2 else 0)
    # version 1: r0 r1 r2 labelled 0 1 0, predicted 0 -> 2 right; version 2: r3..r6 labelled 1 0 1 0 -> 2
    assert store.live_accuracy("iris") == {"1": (2, 3), "2": (2, 4)}
    assert store.live_accuracy("iris", model_name="m") == {"1": (2, 3), "2": (2, 4)}
    assert store.live_accuracy("iris", model_name="another-model") == {}
    store.dispose()


def _scoring(i: int, version: str, prediction: int | None, *, error: str | None = None) -> ScoringRecord:
    probabilities = None if prediction is None else {"a": 0.5}
    return ScoringRecord(
        f"r{i}", datetime.now(UTC), "iris", "m", version, "shadow", prediction, "a", probabilities, 1.0, error
    )


def test_scorings_are_written_once_and_count_in_live_accuracy(tmp_path) -> None:
    store = PredictionStore(f"sqlite:///{tmp_path}/log.db")
    store.insert([_record_of("1", 1, 1), _record_of("1", 2, 0), _scoring(1, "2", 1), _scoring(2, "2", 1)])
    store.insert([_scoring(2, "2", 1), _scoring(3, "2", None, error="boom")])  # r2 replayed: skipped
    with store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT request_id, prediction, error FROM scorings ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [("r1", 1, None), ("r2", 1, None), ("r3", None, "boom")]
    store.record_feedback("r1", "iris", 1)
    labelled = store.record_feedback("r2", "iris", 1)
    assert labelled is not None and (labelled.version, labelled.version_correct) == ("1", 1)
    # the shadow version 2 was right on both; a failed scoring (no prediction) counts for nobody
    assert store.live_accuracy("iris") == {"1": (1, 2), "2": (2, 2)}
    store.dispose()
