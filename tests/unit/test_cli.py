"""The CLI boundary: fast help without heavy imports, clear errors with exit codes.

Errors run in-process (Typer's CliRunner; ``configure_libraries`` is the CLI's only global write and
the suite restores the environment after each test); the help check and the ``--json`` stdout
contract are about the real process and stay subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from typer.testing import CliRunner

from mlops.cli import app
from mlops.settings import get_settings


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mlops.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_help_lists_every_verb_without_importing_zenml_or_mlflow() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from mlops.cli import app\n"
        "result = CliRunner().invoke(app, ['--help'])\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in ('zenml', 'mlflow', 'sklearn', 'evidently') if m in sys.modules))\n"
        "print(result.output)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    first, *rest = out.stdout.splitlines()
    assert first == "[]"
    text = "\n".join(rest)
    for verb in (
        "train",
        "models",
        "predict",
        "promote",
        "rollback",
        "audit",
        "status",
        "serve",
        "demo",
        "batch-predict",
        "generate",
        "drift",
        "lineage",
        "reproduce",
        "stack",
    ):
        assert verb in text, verb


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("predict", "{not json"), 2, "not valid JSON"),
        (("predict", '{"sepal_length": 1}'), 2, "missing field 'sepal_width'"),
        (("train", "--project", "nope"), 2, "unknown project 'nope'"),
        (("promote", "1", "--to", "everywhere", "--reason", "x"), 2, "cannot promote to 'everywhere'"),
        (("generate", "--project", "iris", "--output", "x.csv"), 2, "no data generator"),
    ],
)
def test_usage_errors_are_one_message_and_an_exit_code(
    args, code: int, message: str, tmp_path, monkeypatch
) -> None:
    out = invoke(monkeypatch, tmp_path, *args)
    assert out.exit_code == code, out.output
    assert message in out.stderr
    assert isinstance(out.exception, SystemExit)  # an uncaught error would be the exception here


def test_predict_without_a_model_says_how_to_get_one(tmp_path, monkeypatch) -> None:
    row = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
    out = invoke(monkeypatch, tmp_path, "predict", json.dumps(row))
    assert out.exit_code == 4 and "mlops train" in out.stderr
    assert isinstance(out.exception, SystemExit)  # an uncaught error would be the exception here


def invoke(monkeypatch: pytest.MonkeyPatch, home: Any, *args: str) -> Any:
    """`mlops ARGS` in this process, on its own state folder."""
    monkeypatch.setenv("MLOPS_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "400")  # rich wraps at the terminal width: one line per message
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, list(args))
    finally:
        get_settings.cache_clear()


def test_status_json_is_only_json(tmp_path) -> None:
    out = run("status", "--json", env={"MLOPS_HOME": str(tmp_path)})
    assert out.returncode == 0
    info = json.loads(out.stdout)
    assert info["state_dir"] == str(tmp_path.resolve()) and info["tracking_uri"].startswith("sqlite:///")


def test_status_prints_no_password(tmp_path) -> None:
    """The URLs are shown masked, and so is the registry's error (a driver the registry cannot load
    fails at once, where an unreachable database is retried for minutes)."""
    secret = "s3cr3t-pw"
    out = run(
        "status",
        "--json",
        env={
            "MLOPS_HOME": str(tmp_path),
            "MLOPS_TRACKING_URI": f"postgresql+nodriver://mlflow:{secret}@127.0.0.1:1/mlflow",
            "MLOPS_AUDIT_DB_URL": f"postgresql://audit:{secret}@127.0.0.1:1/audit",
            "MLOPS_PREDICTION_LOG_URL": f"postgresql://log:{secret}@127.0.0.1:1/log",
        },
    )
    assert out.returncode == 0, out.stderr
    assert secret not in out.stdout + out.stderr
    info = json.loads(out.stdout)
    assert info["tracking_uri"] == "postgresql+nodriver://mlflow:***@127.0.0.1:1/mlflow"
    assert info["audit_db"].startswith("postgresql://audit:***@")
    assert info["prediction_log"].startswith("postgresql://log:***@")
    assert "nodriver" in info["registry_error"] and info["aliases"] == {}


# ----- mlops audit / mlops audit verify (tamper-evident audit) -----
def _audit_rows(home: Any, n: int) -> str:
    from mlops.stores.audit import AuditEvent, AuditLog

    url = f"sqlite:///{home / 'audit.db'}"
    log = AuditLog(url)
    for i in range(1, n + 1):
        log.record(
            AuditEvent(
                action="promote",
                project="iris",
                model_name="iris-classifier",
                decision="promoted",
                reason=f"decision {i}",
                actor="pytest",
                to_version=str(i),
            )
        )
    log.dispose()
    return url


def test_audit_lists_and_audit_verify_passes_on_an_untouched_log(tmp_path) -> None:
    _audit_rows(tmp_path, 3)
    listed = run("audit", "--json", env={"MLOPS_HOME": str(tmp_path)})
    assert listed.returncode == 0, listed.stderr
    assert [(e["seq"], e["reason"]) for e in json.loads(listed.stdout)] == [
        (i, f"decision {i}") for i in (1, 2, 3)
    ]
    out = run("audit", "verify", "--no-registry", "--json", env={"MLOPS_HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["ok"] is True and report["rows"] == 3 and report["head_seq"] == 3
    human = run("audit", "verify", "--no-registry", env={"MLOPS_HOME": str(tmp_path)})
    assert human.returncode == 0 and "audit log intact: 3 rows" in human.stdout


def test_audit_verify_exits_6_naming_the_edited_row(tmp_path) -> None:
    import sqlalchemy as sa

    url = _audit_rows(tmp_path, 4)
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # an owner of the database drops the guard and edits history
        conn.exec_driver_sql("DROP TRIGGER audit_log_no_update")
        conn.exec_driver_sql("UPDATE audit_log SET actor = 'someone else' WHERE seq = 2")
    engine.dispose()
    out = run("audit", "verify", "--no-registry", "--json", env={"MLOPS_HOME": str(tmp_path)})
    assert out.returncode == 6 and "Traceback" not in out.stderr, out.stderr
    report = json.loads(out.stdout)
    assert (report["ok"], report["broken_seq"], report["reason"]) == (False, 2, "hash mismatch (row edited)")
    assert "audit log tampered: seq 2: hash mismatch (row edited)" in " ".join(out.stderr.split())
