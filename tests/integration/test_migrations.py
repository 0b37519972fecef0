"""`mlops db upgrade` on an empty SQLite file and on the machine's PostgreSQL, twice; a state folder of
117f35d (tables made by ``create_all``, no version table) adopted with every row; ``alembic check``
finds no drift between ``stores/tables.py`` and the migrations; after every revision the audit log
refuses UPDATE and DELETE (and TRUNCATE on Postgres).

PostgreSQL: 127.0.0.1:5432, user postgres, trust auth; each test creates and drops its own databases.
Missing, it skips locally and FAILS under ``CI=true``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from mlops.stores import migrate
from mlops.stores.audit import AuditLog
from mlops.stores.predictions import get_prediction
from tests.support.control_db import LEGACY_AUDIT_ROWS, admin, require_postgres

TABLES = {
    "control": {"audit_log", "audit_anchor", "alias_intents", "rollouts", "leases", "jobs"},
    "predictions": {"predictions", "feedback", "drift_results", "scorings"},
}

# ----- the schema of 117f35d, exactly as its create_all and SQLite triggers made it -----
LEGACY_DDL = {
    ("sqlite", "control"): [
        "CREATE TABLE audit_log (id INTEGER NOT NULL, at DATETIME NOT NULL, actor VARCHAR(200) NOT NULL, "
        "action VARCHAR(50) NOT NULL, project VARCHAR(100) NOT NULL, model_name VARCHAR(200) NOT NULL, "
        "alias VARCHAR(50), from_version VARCHAR(50), to_version VARCHAR(50), decision VARCHAR(50) NOT NULL, "
        "reason TEXT NOT NULL, details TEXT NOT NULL, PRIMARY KEY (id))",
        "CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
        "CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log "
        "BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END",
    ],
    ("postgresql", "control"): [
        "CREATE TABLE audit_log (id SERIAL NOT NULL, at TIMESTAMP WITH TIME ZONE NOT NULL, "
        "actor VARCHAR(200) NOT NULL, action VARCHAR(50) NOT NULL, project VARCHAR(100) NOT NULL, "
        "model_name VARCHAR(200) NOT NULL, alias VARCHAR(50), from_version VARCHAR(50), "
        "to_version VARCHAR(50), decision VARCHAR(50) NOT NULL, reason TEXT NOT NULL, "
        "details TEXT NOT NULL, PRIMARY KEY (id))",
    ],
}
_PREDICTION_TABLES = [
    "CREATE TABLE predictions (request_id VARCHAR(64) NOT NULL, at {ts} NOT NULL, "
    "project VARCHAR(100) NOT NULL, model_name VARCHAR(200) NOT NULL, model_version VARCHAR(50) NOT NULL, "
    "runtime VARCHAR(20) NOT NULL, "
    "inputs TEXT NOT NULL, prediction INTEGER NOT NULL, label VARCHAR(200) NOT NULL, "
    "probabilities TEXT NOT NULL, latency_ms FLOAT NOT NULL, PRIMARY KEY (request_id))",
    "CREATE INDEX ix_predictions_project ON predictions (project)",
    "CREATE INDEX ix_predictions_at ON predictions (at)",
    "CREATE TABLE feedback (id {serial} NOT NULL, request_id VARCHAR(64) NOT NULL, at {ts} NOT NULL, "
    "project VARCHAR(100) NOT NULL, true_label INTEGER NOT NULL, correct BOOLEAN NOT NULL, PRIMARY KEY (id))",
    "CREATE INDEX ix_feedback_request_id ON feedback (request_id)",
    "CREATE TABLE drift_results (id {serial} NOT NULL, at {ts} NOT NULL, project VARCHAR(100) NOT NULL, "
    "model_version VARCHAR(50) NOT NULL, reference_hash VARCHAR(128) NOT NULL, "
    "current_rows INTEGER NOT NULL, share FLOAT NOT NULL, detected BOOLEAN NOT NULL, features TEXT NOT NULL, "
    "report_path TEXT NOT NULL, "
    "PRIMARY KEY (id))",
    "CREATE INDEX ix_drift_results_project ON drift_results (project)",
    "CREATE INDEX ix_drift_results_at ON drift_results (at)",
]
LEGACY_DDL[("sqlite", "predictions")] = [
    s.format(ts="DATETIME", serial="INTEGER") for s in _PREDICTION_TABLES
]
LEGACY_DDL[("postgresql", "predictions")] = [
    s.format(ts="TIMESTAMP WITH TIME ZONE", serial="SERIAL") for s in _PREDICTION_TABLES
]
LEGACY_ROWS = {
    "control": LEGACY_AUDIT_ROWS,
    "predictions": [
        *(
            "INSERT INTO predictions VALUES "
            f"('req-{i}', '2026-11-30 10:0{i}:00.000000', 'iris', 'iris-classifier', '1', 'onnx', "
            f"'{{\"sepal_length\": 5.{i}}}', {i % 3}, 'setosa', '{{\"setosa\": 0.9}}', 0.{i + 1})"
            for i in range(5)
        ),
        "INSERT INTO feedback (request_id, at, project, true_label, correct) "
        "VALUES ('req-0', '2026-11-30 13:00:00.000000', 'iris', 0, true)",
        "INSERT INTO feedback (request_id, at, project, true_label, correct) "
        "VALUES ('req-1', '2026-11-30 13:01:00.000000', 'iris', 2, false)",
        "INSERT INTO drift_results (at, project, model_version, reference_hash, current_rows, share, "
        "detected, features, report_path) VALUES ('2026-11-30 14:00:00.000000', 'iris', '1', 'abc', 500, "
        "0.25, false, "
        '\'{"sepal_length": {"score": 0.1, "drifted": false, "method": "ks"}}\', \'\')',
    ],
}


# ----- backends -----
@pytest.fixture(scope="module")
def postgres() -> None:
    require_postgres()


@pytest.fixture(params=["sqlite", "postgresql"])
def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """``new_database(name)``: the URL of a fresh, empty database on this test's backend."""
    created: list[str] = []

    def make(name: str) -> str:
        if request.param == "sqlite":
            return f"sqlite:///{tmp_path / 'state' / f'{name}.db'}"
        database = f"mlops_mig_{name}_{uuid.uuid4().hex[:10]}"
        admin(f"CREATE DATABASE {database}")
        created.append(database)
        return f"postgresql://postgres@127.0.0.1:5432/{database}"

    if request.param == "postgresql":
        request.getfixturevalue("postgres")
    make.backend = request.param  # type: ignore[attr-defined]
    yield make
    for database in created:
        admin(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")


def _cli_upgrade(tmp_path: Path, urls: dict[str, str]) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env |= {"MLOPS_HOME": str(tmp_path / "state"), "MLOPS_AUDIT_DB_URL": urls["control"]}
    env |= {"MLOPS_PREDICTION_LOG_URL": urls["predictions"]}
    out = subprocess.run(
        [sys.executable, "-m", "mlops.cli", "db", "upgrade", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _snapshot(url: str) -> dict[str, object]:
    """Tables, columns, indexes, triggers and version rows: what an upgrade could change."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            inspector = sa.inspect(conn)
            shape = {
                t: (
                    [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(t)],
                    sorted((ix["name"], tuple(ix["column_names"])) for ix in inspector.get_indexes(t)),
                )
                for t in sorted(inspector.get_table_names())
            }
            versions = sorted(conn.exec_driver_sql(f"SELECT * FROM {migrate.VERSION_TABLE}").scalars())
            return {"tables": shape, "triggers": _triggers(conn), "versions": versions}
    finally:
        engine.dispose()


def _triggers(conn: sa.Connection) -> list[tuple[str, ...]]:
    if conn.dialect.name == "sqlite":
        sql = "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' ORDER BY name"
    else:
        sql = "SELECT tgname, pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal ORDER BY tgname"
    return [tuple(r) for r in conn.exec_driver_sql(sql).all()]


_LEGACY_AUDIT_COLUMNS = (
    "id, at, actor, action, project, model_name, alias, from_version, to_version, decision, reason, details"
)
_LEGACY_PREDICTION_COLUMNS = (
    "request_id, at, project, model_name, model_version, runtime, inputs, prediction, label, probabilities, "
    "latency_ms"
)


def _rows(url: str, database: str) -> dict[str, list[tuple]]:
    """The rows of every table of ``database`` that exists; of audit_log and predictions, their 117f35d
    columns."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            present = set(sa.inspect(conn).get_table_names())
            columns = {"audit_log": _LEGACY_AUDIT_COLUMNS, "predictions": _LEGACY_PREDICTION_COLUMNS}
            return {
                t: [
                    tuple(r)
                    for r in conn.exec_driver_sql(f"SELECT {columns.get(t, '*')} FROM {t} ORDER BY 1").all()
                ]
                for t in sorted(TABLES[database] & present)
            }
    finally:
        engine.dispose()


def _execute(url: str, statements: list[str]) -> None:
    engine = migrate.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


# ----- the tests -----
def test_upgrade_creates_every_table_and_a_second_run_changes_nothing(new_database, tmp_path) -> None:
    urls = {"control": new_database("control"), "predictions": new_database("predictions")}
    first = _cli_upgrade(tmp_path, urls)
    heads = dict(zip(TABLES, migrate.script_heads(list(TABLES)), strict=True))
    assert [(u["databases"], u["before"], u["after"], u["changed"]) for u in first] == [
        (["control"], [], [heads["control"]], True),
        (["predictions"], [], [heads["predictions"]], True),
    ]
    snapshots = {db: _snapshot(url) for db, url in urls.items()}
    for db, snapshot in snapshots.items():
        assert set(snapshot["tables"]) == TABLES[db] | {migrate.VERSION_TABLE}  # type: ignore[arg-type]
    assert len(snapshots["control"]["triggers"]) >= 2  # type: ignore[arg-type]

    second = _cli_upgrade(tmp_path, urls)
    assert [u["changed"] for u in second] == [False, False]
    assert [u["before"] for u in second] == [u["after"] for u in first]
    assert {db: _snapshot(url) for db, url in urls.items()} == snapshots


def test_one_database_for_both_holds_both_heads_beside_another_tools_alembic_table(
    new_database, tmp_path
) -> None:
    url = new_database("shared")
    _execute(
        url,
        [
            "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)",  # e.g. Optuna's
            "INSERT INTO alembic_version VALUES ('v3.2.0.a')",
        ],
    )
    report = _cli_upgrade(tmp_path, {"control": url, "predictions": url})
    assert len(report) == 1 and report[0]["databases"] == ["control", "predictions"]
    assert report[0]["after"] == sorted(migrate.script_heads(["control", "predictions"]))
    snapshot = _snapshot(url)
    assert set(snapshot["tables"]) == {  # type: ignore[arg-type]
        "alembic_version",
        migrate.VERSION_TABLE,
        *TABLES["control"],
        *TABLES["predictions"],
    }
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all() == ["v3.2.0.a"]
    engine.dispose()
    migrate.check(url, ["control", "predictions"])  # the other tool's table is not ours to compare


def test_a_117f35d_state_folder_is_adopted_keeping_every_row(new_database, tmp_path) -> None:
    backend = new_database.backend
    urls = {"control": new_database("audit"), "predictions": new_database("predictions")}
    for db, url in urls.items():
        _execute(url, LEGACY_DDL[(backend, db)] + LEGACY_ROWS[db])
    before = {db: _rows(url, db) for db, url in urls.items()}
    assert [len(rows) for rows in before["predictions"].values()] == [1, 2, 5]  # drift, feedback, predictions

    report = _cli_upgrade(tmp_path, urls)
    assert [(u["before"], u["changed"]) for u in report] == [([], True), ([], True)]
    after = {db: _rows(url, db) for db, url in urls.items()}
    assert {db: {t: rows for t, rows in after[db].items() if t in before[db]} for db in after} == before
    assert len(after["control"]["audit_anchor"]) == 1  # c0002 chained the adopted rows and anchored them
    for db, url in urls.items():
        migrate.check(url, [db])  # the adopted tables are exactly the models

    events = AuditLog(urls["control"]).history(model_name="iris-classifier")
    assert [(e.id, e.actor, e.to_version, e.decision) for e in events] == [
        (1, "ana", "1", "promoted"),
        (2, "bo", "2", "kept"),
    ]
    assert events[0].details == {"f1": 0.9} and events[0].at.isoformat().startswith("2026-11-30T10:00:00")
    row = get_prediction(urls["predictions"], "req-3")
    assert row is not None and row["inputs"] == {"sepal_length": 5.3} and row["prediction"] == 0
    with pytest.raises(sa.exc.DatabaseError, match="append-only"):  # the guard holds on both backends now
        _execute(urls["control"], ["DELETE FROM audit_log"])
    assert len(_rows(urls["control"], "control")["audit_log"]) == 3


def test_a_table_of_the_same_name_but_not_ours_is_refused_untouched(new_database, tmp_path) -> None:
    url = new_database("foreign")
    _execute(
        url,
        [
            "CREATE TABLE audit_log (id INTEGER PRIMARY KEY, note TEXT)",
            "INSERT INTO audit_log VALUES (1, 'x')",
        ],
    )
    with pytest.raises(RuntimeError, match=r"audit_log exists but lacks columns \['at', 'actor'"):
        migrate.upgrade(url, ["control"])
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT note FROM audit_log").scalars().all() == ["x"]
        assert not sa.inspect(conn).has_table(migrate.VERSION_TABLE) or not migrate.current_heads(conn)
    engine.dispose()


def test_models_and_migrations_agree(new_database) -> None:
    """``alembic check`` (autogenerate's comparison) on each database, freshly upgraded."""
    for db in TABLES:
        url = new_database(f"check_{db}")
        migrate.upgrade(url, [db])
        migrate.check(url, [db])
    url = new_database("check_drift")
    migrate.upgrade(url, ["predictions"])
    _execute(url, ["ALTER TABLE drift_results ADD COLUMN note TEXT"])
    from alembic.util import AutogenerateDiffsDetected

    with pytest.raises(AutogenerateDiffsDetected, match="note"):  # the check can fail
        migrate.check(url, ["predictions"])


def test_audit_log_refuses_update_delete_and_truncate_after_every_revision(new_database) -> None:
    from alembic import command
    from alembic.script import ScriptDirectory

    url = new_database("guards")
    script = ScriptDirectory.from_config(migrate.alembic_config(url, ["control"]))
    revisions = list(reversed(list(script.iterate_revisions("control@head", "base"))))
    assert revisions, "the control branch has no revision"
    engine = migrate.create_engine(url)
    refused = ["UPDATE audit_log SET reason = 'forged'", "DELETE FROM audit_log"]
    if engine.dialect.name == "postgresql":
        refused.append("TRUNCATE audit_log")
    try:
        for n, revision in enumerate(revisions, start=1):
            with engine.begin() as conn:
                command.upgrade(migrate.alembic_config(url, ["control"], conn), revision.revision)
                assert migrate.current_heads(conn) == [revision.revision]
            _insert_audit_row(url, f"after {revision.revision}")
            for statement in refused:
                with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
                    conn.exec_driver_sql(statement)
            with engine.connect() as conn:
                reasons = conn.exec_driver_sql("SELECT reason FROM audit_log ORDER BY id").scalars().all()
            assert reasons == [f"after {r.revision}" for r in revisions[:n]]
    finally:
        engine.dispose()


def test_a_server_database_behind_the_code_is_refused_with_the_fix(postgres, new_database) -> None:
    url = new_database("behind")
    if new_database.backend == "sqlite":  # SQLite is upgraded in place on first use (the embedded default)
        AuditLog(url).record(_event("auto"))
        assert [e.reason for e in AuditLog(url).history()] == ["auto"]
        return
    with pytest.raises(migrate.SchemaNotReady, match="not at schema") as refused:
        AuditLog(url).record(_event("x"))
    assert "mlops db upgrade" in refused.value.hint
    # a newer release's revision (expand-then-contract: this code keeps working on it)
    migrate.upgrade(url, ["control"])
    _execute(url, [f"UPDATE {migrate.VERSION_TABLE} SET version_num = 'c9999_from_the_future'"])
    AuditLog(url).record(_event("still writes"))
    assert [e.reason for e in AuditLog(url).history()] == ["still writes"]


def _insert_audit_row(url: str, reason: str) -> None:
    """A row by hand, with the chain's columns once a revision has added them (c0002)."""
    statement = LEGACY_ROWS["control"][0].replace("first model", reason)
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            chained = "seq" in {c["name"] for c in sa.inspect(conn).get_columns("audit_log")}
            n = conn.exec_driver_sql("SELECT count(*) FROM audit_log").scalar_one()
    finally:
        engine.dispose()
    if chained:
        statement = statement.replace("details)", "details, seq, prev_hash, hash)").replace(
            "'{\"f1\": 0.9}')", f"'{{\"f1\": 0.9}}', {n + 1}, '{'0' * 64}', 'h{n + 1}')"
        )
    _execute(url, [statement])


def _event(reason: str):
    from mlops.stores.audit import AuditEvent

    return AuditEvent(
        action="promote",
        project="iris",
        model_name="iris-classifier",
        decision="promoted",
        reason=reason,
        actor="pytest",
    )


def test_an_unreachable_database_is_one_clear_line_without_its_password(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env |= {
        "MLOPS_HOME": str(tmp_path / "state"),
        "MLOPS_AUDIT_DB_URL": "postgresql://ops:Pa55-w0rd@127.0.0.1:1/audit",
    }
    out = subprocess.run(
        [sys.executable, "-m", "mlops.cli", "db", "upgrade"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    text = " ".join(out.stderr.split())  # rich wraps long lines
    assert "cannot migrate the control database at postgresql://ops:***@127.0.0.1:1/audit" in text
    assert "Pa55-w0rd" not in out.stderr + out.stdout and "hint: check that it is running" in text
