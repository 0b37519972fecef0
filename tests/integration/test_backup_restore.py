"""Backup and restore of every store, as the runbook (docs/health-data.md) does it, on SQLite and on
PostgreSQL; then erasure by subject and a purge, with the audit chain verifying after each.

A real state: `mlops train` (the ZenML pipeline: ZenML's store and artifact store, MLflow's database
and artifacts, the audit log), the real service (the model cache; predictions with and without
``X-Subject-Key``, a batch request, a label). `mlops backup` runs while the service serves; the state
is then wiped (the folder removed, the PostgreSQL databases dropped and created empty) and `mlops
restore` must bring every store back: row counts of every table, every file, the registry's alias,
ZenML's run, a chain that `mlops audit verify` accepts.

PostgreSQL: 127.0.0.1:5432, user postgres, trust auth (control DB, prediction log and MLflow's
backend store); missing, it skips locally and FAILS under ``CI=true``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from mlops.settings import Settings
from mlops.stores.retention import hash_subject, subject_secret
from tests.integration.processes import ADMIN_KEY, MLOPS, service_env, start_service
from tests.support.control_db import admin, require_postgres
from tests.support.serving import EXAMPLE

pytestmark = pytest.mark.integration

PG = "postgresql://postgres@127.0.0.1:5432"
PATIENT = "P-000123"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The settings' database URLs on this backend (none: SQLite files in the state folder)."""
    if request.param == "sqlite":
        yield {}
        return
    require_postgres()
    names = {role: f"mlops_bk_{role}_{uuid.uuid4().hex[:8]}" for role in ("control", "predlog", "mlflow")}
    for name in names.values():
        admin(f"CREATE DATABASE {name}")
    try:
        yield {
            "MLOPS_AUDIT_DB_URL": f"{PG}/{names['control']}",
            "MLOPS_PREDICTION_LOG_URL": f"{PG}/{names['predlog']}",
            "MLOPS_TRACKING_URI": f"{PG}/{names['mlflow']}",
        }
    finally:
        for name in names.values():
            admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def mlops(
    env: dict[str, str], *args: str, ok: bool = True, timeout: float = 900
) -> subprocess.CompletedProcess:
    cwd = Path(env["MLOPS_HOME"]).parent  # nothing a command writes lands in the checkout
    out = subprocess.run([MLOPS, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if ok:
        assert out.returncode == 0, f"mlops {' '.join(args)}: {out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def as_json(env: dict[str, str], *args: str) -> Any:
    return json.loads(mlops(env, *args, "--json").stdout)


def database_urls(home: Path, backend: dict[str, str]) -> dict[str, str]:
    return {
        "control": backend.get("MLOPS_AUDIT_DB_URL", f"sqlite:///{home / 'audit.db'}"),
        "predictions": backend.get("MLOPS_PREDICTION_LOG_URL", f"sqlite:///{home / 'predictions.db'}"),
        "mlflow": backend.get("MLOPS_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}"),
        "zenml": f"sqlite:///{home / 'zenml' / 'local_stores' / 'default_zen_store' / 'zenml.db'}",
    }


def row_counts(url: str) -> dict[str, int]:
    """Rows of every table, counted here independently of the backup code."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            names = sa.inspect(conn).get_table_names()
            return {n: conn.execute(sa.text(f'SELECT count(*) FROM "{n}"')).scalar_one() for n in names}
    finally:
        engine.dispose()


def files(root: Path) -> dict[str, str]:
    """Every file and its hash, but SQLite databases (their rows are compared) and their WAL."""
    out = {}
    for path in sorted(root.rglob("*")):
        data = path.read_bytes() if path.is_file() else b""
        if (
            path.is_file()
            and not data.startswith(b"SQLite format 3")
            and path.suffix not in {".db-wal", ".db-shm"}
        ):
            out[str(path.relative_to(root))] = hashlib.sha256(data).hexdigest()
    return out


def wait_rows(url: str, rows: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = row_counts(url)
        if counts.get("predictions", 0) >= rows and counts.get("feedback", 0) >= 1:
            return
        time.sleep(0.5)
    raise AssertionError(f"the prediction log did not reach {rows} rows: {row_counts(url)}")


def wipe(home: Path, backend: dict[str, str]) -> None:
    """Lose everything: the state folder, and each PostgreSQL database (created again, empty)."""
    import shutil

    shutil.rmtree(home)
    for url in backend.values():
        name = url.rsplit("/", 1)[1]
        admin(f"DROP DATABASE {name} WITH (FORCE)")
        admin(f"CREATE DATABASE {name}")


def test_a_restore_brings_back_every_store_and_the_audit_verifies_after_erasure_and_purge(
    backend: dict[str, str], tmp_path: Path
) -> None:
    home = tmp_path / "state"
    env = service_env(home, MLOPS_ACTOR="backup-test", **backend)
    if backend:
        mlops(env, "db", "upgrade")
        # MLflow on a database URL other than SQLite puts artifacts in ./mlruns of the working
        # directory (mlops.tracking sets the state folder only for SQLite): the operator creates the
        # experiment with its artifact location in the state folder, as here
        from mlflow import MlflowClient

        location = (home / "mlartifacts").as_uri()
        MlflowClient(tracking_uri=backend["MLOPS_TRACKING_URI"]).create_experiment("iris", location)
    mlops(env, "train", "--project", "iris")
    urls = database_urls(home, backend)

    # ----- traffic through the real service: subjects, a batch, a label -----
    service, base = start_service(home, tmp_path, **backend)
    try:
        with httpx.Client(base_url=base, timeout=30) as client:
            subject_ids = []
            for _ in range(3):
                answer = client.post("/predict", json=EXAMPLE, headers={"X-Subject-Key": PATIENT})
                assert answer.status_code == 200, answer.text
                subject_ids.append(answer.json()["request_id"])
            other = client.post("/predict", json=EXAMPLE, headers={"X-Subject-Key": "P-000999"})
            anonymous = client.post("/predict", json=EXAMPLE).json()["request_id"]
            batch = client.post("/predict/batch", json={"rows": [EXAMPLE] * 3})
            assert other.status_code == batch.status_code == 200
            refused = client.post("/predict", json=EXAMPLE, headers={"X-Subject-Key": "x" * 300})
            assert refused.status_code == 400 and refused.json()["detail"]["field"] == "X-Subject-Key"
            label = client.post(
                "/feedback",
                json={"request_id": subject_ids[0], "true_label": 0},
                headers={"X-API-Key": ADMIN_KEY},
            )
            assert label.status_code == 200, label.text
        wait_rows(urls["predictions"], 8)
        backup_dir = tmp_path / "backup"
        manifest = as_json(env, "backup", str(backup_dir))  # while the service serves
    finally:
        service.stop()

    # the subject's keyed hash is stored, the key nowhere
    settings = Settings(home=home, audit_db_url=urls["control"])
    expected = hash_subject(subject_secret(settings), PATIENT)
    engine = sa.create_engine(urls["predictions"], poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        hashes = dict(conn.execute(sa.text("SELECT request_id, subject_hash FROM predictions")).all())
    engine.dispose()
    assert {hashes[i] for i in subject_ids} == {expected} and hashes[anonymous] is None
    assert not any(PATIENT.encode() in p.read_bytes() for p in home.rglob("*.db"))

    names = {s["name"] for s in manifest["stores"]}
    assert {"MLflow artifacts", "ZenML store and artifact store", "model cache"} <= names
    if backend:
        assert {"control", "predictions", "mlflow"} <= {
            s["name"] for s in manifest["stores"] if s["kind"] == "postgresql"
        }
    before_rows = {role: row_counts(url) for role, url in urls.items()}
    before_files = {d: files(home / d) for d in ("mlartifacts", "zenml", "model-cache")}
    assert before_rows["zenml"]["pipeline_run"] >= 1 and before_rows["predictions"]["predictions"] == 8
    before_status = as_json(env, "status", "--project", "iris")

    # ----- lose everything, then restore -----
    wipe(home, backend)
    restored = as_json(env, "restore", str(backup_dir))
    assert restored["ok"] and restored["audit_chain"]["ok"], restored

    after_rows = {role: row_counts(url) for role, url in urls.items()}
    captured = {s["name"]: s["tables"] for s in manifest["stores"] if s["tables"]}
    captured["zenml"] = captured.pop("zenml/local_stores/default_zen_store/zenml.db")
    # the live log went on after the backup's copy (the backup's own row); the restored one gains the
    # restore's row instead
    backed_up = captured["control"]["audit_log"]
    assert before_rows["control"]["audit_log"] == after_rows["control"]["audit_log"] == backed_up + 1
    captured["control"]["audit_log"] += 1
    for role, tables in after_rows.items():  # every table as the backup captured it, the service running
        assert tables == {t: captured[role][t] for t in tables}, role
    # the service's lease, held while it ran, is the one difference from the stopped state
    assert after_rows["control"].pop("leases") == 1 and before_rows["control"].pop("leases") == 0
    assert after_rows == before_rows
    assert {d: files(home / d) for d in before_files} == before_files
    assert as_json(env, "status", "--project", "iris") == before_status  # the registry's aliases
    mlops(env, "audit", "verify", "--project", "iris")

    # a second restore over the restored state is refused without --force, and moves it aside with it
    refused = mlops(env, "restore", str(backup_dir), ok=False)
    assert refused.returncode == 2 and "refusing to restore" in refused.stderr + refused.stdout
    forced = as_json(env, "restore", str(backup_dir), "--force")
    assert forced["ok"] and Path(forced["moved_aside"]).is_dir()
    mlops(env, "audit", "verify", "--project", "iris")

    # ----- erasure by subject, then a purge: the chain still verifies -----
    erased = as_json(env, "erase", "--subject", PATIENT, "--reason", "patient asked")
    assert (erased["predictions"], erased["feedback"]) == (3, 1)
    mlops(env, "audit", "verify", "--project", "iris")
    purged = as_json(env, "purge", "--now", "2100-01-01T00:00:00")
    assert purged["predictions"] == 5  # the other subject's, the anonymous one, the batch's three
    mlops(env, "audit", "verify", "--project", "iris")
    actions = [e["action"] for e in as_json(env, "audit", "--project", "iris", "--limit", "1000")]
    assert actions  # the model's own history is still there
    # the forced restore's row, then the erasure's and the purge's: audit rows are never deleted
    assert row_counts(urls["control"])["audit_log"] == backed_up + 3


def test_the_backup_tools_refuse_what_they_cannot_do(tmp_path: Path) -> None:
    home = tmp_path / "state"
    env = service_env(home)

    def refused(*args: str) -> str:
        out = mlops(env, *args, ok=False)
        assert out.returncode != 0, out.stdout
        return f"{out.returncode}: " + " ".join((out.stdout + out.stderr).split())  # rich wraps lines

    (tmp_path / "nothing").mkdir()
    assert refused("restore", str(tmp_path / "nothing")).startswith("2: ")
    assert "not a backup" in refused("restore", str(tmp_path / "nothing"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    assert "is not empty" in refused("backup", str(tmp_path / "full"))
    mysql = refused("backup", str(tmp_path / "b"), "--database", "zenml=mysql://u@127.0.0.1/zenml")
    assert mysql.startswith("2: ") and "only SQLite and PostgreSQL can be" in mysql
    assert "is not NAME=URL" in refused("backup", str(tmp_path / "b"), "--database", "mlflow")

    # a damaged backup is refused before anything changes
    mlops(env, "purge")  # a state: the two databases and one audit row
    mlops(env, "backup", str(tmp_path / "b"))
    import shutil

    shutil.rmtree(home)
    with (tmp_path / "b" / "state" / "audit.db").open("r+b") as f:
        f.seek(200)
        f.write(b"\xff" * 8)
    damaged = refused("restore", str(tmp_path / "b"))
    assert damaged.startswith("1: ") and "is damaged" in damaged and not home.exists()
