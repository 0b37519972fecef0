"""Embedded SQLite files are migrated on first use, once, even when several processes start at once."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from mlops.stores import migrate
from mlops.stores.engine import create_engine

RACE = """
import sys
from mlops.stores.engine import create_engine
from mlops.stores.migrate import ensure_schema
engine = create_engine(sys.argv[1])
ensure_schema(engine, "predictions")
with engine.connect() as conn:
    print(conn.exec_driver_sql("SELECT count(*) FROM predictions").scalar())
"""


def test_first_use_of_an_embedded_file_upgrades_it_to_head(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/state/predictions.db"
    engine = create_engine(url)
    migrate.ensure_schema(engine, "predictions")
    with engine.connect() as conn:
        assert migrate.current_heads(conn) == migrate.script_heads(["predictions"])
        assert {"predictions", "feedback", "drift_results"} <= set(sa.inspect(conn).get_table_names())
    engine.dispose()


def test_workers_starting_together_migrate_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/log.db"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(6)
    ]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [err[-800:] for _, err in results]
    assert [out.strip() for out, _ in results] == ["0"] * 6
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(f"SELECT version_num FROM {migrate.VERSION_TABLE}").scalars().all()
    engine.dispose()
    assert rows == migrate.script_heads(["predictions"])


def test_each_database_has_its_own_branch_and_head() -> None:
    heads = migrate.script_heads(["control", "predictions"])
    assert len(set(heads)) == 2
    from alembic.script import ScriptDirectory

    for database in ("control", "predictions"):
        script = ScriptDirectory.from_config(migrate.alembic_config("sqlite://", [database], only=True))
        assert [r.revision for r in script.get_revisions("heads")] == migrate.script_heads([database])


def test_upgrade_all_migrates_each_configured_database_once(tmp_path: Path) -> None:
    from mlops.settings import Settings

    embedded = Settings(home=tmp_path / "state")
    assert embedded.databases == {
        "control": f"sqlite:///{tmp_path / 'state' / 'audit.db'}",
        "predictions": f"sqlite:///{tmp_path / 'state' / 'predictions.db'}",
    }
    first = migrate.upgrade_all(embedded)
    assert [(u.databases, u.changed) for u in first] == [(["control"], True), (["predictions"], True)]
    assert [u.changed for u in migrate.upgrade_all(embedded)] == [False, False]
    shared_url = f"sqlite:///{tmp_path / 'one.db'}"
    shared = Settings(home=tmp_path / "state", audit_db_url=shared_url, prediction_log_url=shared_url)
    (only,) = migrate.upgrade_all(shared)
    assert only.databases == ["control", "predictions"] and only.after == sorted(
        migrate.script_heads(["control", "predictions"])
    )


def test_an_older_release_keeps_writing_to_a_file_a_newer_one_migrated(tmp_path: Path) -> None:
    """A rollback on the embedded default: the file records a revision this code does not know.
    Alembic would refuse to upgrade it, and every insert of the prediction log's shipper with it;
    the schema is left as it is (expand-then-contract) and rows are written."""
    from mlops.stores.predictions import PredictionStore, Record

    url = f"sqlite:///{tmp_path}/predictions.db"
    engine = create_engine(url)
    migrate.ensure_schema(engine, "predictions")
    (head,) = migrate.script_heads(["predictions"])
    with engine.begin() as conn:  # what a newer release's next migration would leave
        conn.exec_driver_sql(
            f"UPDATE {migrate.VERSION_TABLE} SET version_num = 'p9999' WHERE version_num = ?", (head,)
        )
    engine.dispose()
    migrate._ready.clear()  # a new process: the file is checked again
    store = PredictionStore(url)
    record = Record("r1", datetime.now(UTC), "iris", "m", "1", "onnx", {"x": 1}, 1, "a", {"a": 0.9}, 0.5)
    assert store.insert([record]) == 1
    with store.engine.connect() as conn:
        assert migrate.current_heads(conn) == ["p9999"]
    store.dispose()
