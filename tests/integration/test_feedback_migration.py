"""p0002 on SQLite and the machine's PostgreSQL: a p0001 prediction log holding several labels for one
request keeps only the latest of each (latest time, then highest id), every other row untouched; the
unique index then makes the store's upsert replace a label instead of adding one.

PostgreSQL as in test_migrations.py: missing, it skips locally and FAILS under ``CI=true``.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command

from mlops.stores import migrate
from mlops.stores.predictions import PredictionStore
from tests.integration.test_migrations import _execute, new_database, postgres  # noqa: F401  (fixtures)

PREDICTIONS = [
    "INSERT INTO predictions VALUES "
    f"('req-{i}', '2026-11-30 10:0{i}:00.000000', 'iris', 'iris-classifier', '{1 + i // 2}', 'onnx', "
    f"'{{}}', {i % 3}, 'setosa', '{{}}', 0.5)"
    for i in range(4)
]
# (request, time, label): req-0 labelled three times (the middle one is the latest by time), req-1
# twice at the same time (the higher id wins), req-2 once, req-3 never.
LABELS = [
    ("req-0", "13:00", 1),
    ("req-0", "13:05", 0),
    ("req-0", "13:02", 2),
    ("req-1", "13:01", 0),
    ("req-1", "13:01", 1),
    ("req-2", "13:03", 2),
]


def _feedback_rows(url: str) -> list[tuple[str, int]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            sql = "SELECT request_id, true_label FROM feedback ORDER BY request_id"
            return [(r[0], r[1]) for r in conn.exec_driver_sql(sql).all()]
    finally:
        engine.dispose()


def test_p0002_keeps_the_latest_label_of_each_request(new_database) -> None:  # noqa: F811
    url = new_database("feedback")
    engine = migrate.create_engine(url)
    try:
        with engine.begin() as conn:
            command.upgrade(migrate.alembic_config(url, ["predictions"], conn), "p0001")
    finally:
        engine.dispose()
    labels = [
        "INSERT INTO feedback (request_id, at, project, true_label, correct) "
        f"VALUES ('{request}', '2026-11-30 {time}:00.000000', 'iris', {label}, false)"
        for request, time, label in LABELS
    ]
    _execute(url, PREDICTIONS + labels)
    assert len(_feedback_rows(url)) == 6

    migrate.upgrade(url, ["predictions"])
    assert _feedback_rows(url) == [("req-0", 0), ("req-1", 1), ("req-2", 2)]
    migrate.check(url, ["predictions"])  # the unique index is exactly tables.py's

    store = PredictionStore(url)  # after the upgrade, a label replaces: still one row per request
    try:
        relabel = store.record_feedback("req-0", "iris", 0)
        assert relabel is not None and relabel.correct and relabel.version == "1"
        assert _feedback_rows(url)[0] == ("req-0", 0) and len(_feedback_rows(url)) == 3
        # version 1 scored req-0 (pred 0) and req-1 (pred 1); version 2 req-2 (pred 2): all right
        assert store.live_accuracy("iris") == {"1": (2, 2), "2": (1, 1)}
    finally:
        store.dispose()
    with pytest.raises(sa.exc.IntegrityError):  # the database itself refuses a second row for a request
        _execute(url, [labels[0]])
