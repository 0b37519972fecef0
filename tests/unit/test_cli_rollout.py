"""`mlops rollout` in-process (Typer's CliRunner) over a real registry of two iris versions and real
SQLite stores: start, status (text and JSON), a refused promotion (exit 5 with its reasons), abort,
the guard's one round, and bad input as a usage error (exit 2) with a clear message."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.support.rollout_evidence import EvidenceWriter
from typer.testing import CliRunner

from mlops.cli import app, render
from mlops.registry import Registry
from mlops.settings import Settings, get_settings


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    from tests.support.training import train_register_promote

    from mlops.configure import configure_libraries

    root = tmp_path_factory.mktemp("cli-rollout") / "state"
    settings = Settings(home=root, actor="pytest")
    configure_libraries(settings)
    first = train_register_promote(settings, "iris")["model"]["version"]
    second = train_register_promote(settings, "iris", seed=7)["model"]["version"]
    production = Registry(settings, "iris").alias_version("production")
    return root, str(production), str(second if production == first else first)


def invoke(monkeypatch: pytest.MonkeyPatch, root: Path, *args: str, **env: str) -> Any:
    monkeypatch.setenv("MLOPS_HOME", str(root))
    monkeypatch.setenv("MLOPS_ACTOR", "pytest")
    monkeypatch.setenv("COLUMNS", "400")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    document = io.StringIO()  # where --json writes (``main`` points it at the real stdout)
    monkeypatch.setattr(render, "json_out", document)
    try:
        result = CliRunner().invoke(app, ["rollout", *args])
    finally:
        get_settings.cache_clear()
    result.document = document.getvalue()
    return result


def test_rollout_help_lists_its_verbs_without_importing_zenml_or_mlflow() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from mlops.cli import app\n"
        "result = CliRunner().invoke(app, ['rollout', '--help'], env={'COLUMNS': '200'})\n"
        "assert result.exit_code == 0, result.output\n"
        "print(sorted(m for m in ('zenml', 'mlflow', 'sklearn') if m in sys.modules))\n"
        "print(result.output)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    first, *rest = out.stdout.splitlines()
    assert first == "[]"
    for verb in ("start", "ramp", "status", "promote", "abort", "guard"):
        assert f" {verb} " in "\n".join(rest)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("start", "2", "--mode", "blue-green"), "mode 'blue-green' is not one of shadow, canary"),
        (("start", "2", "--mode", "canary", "--percent", "0"), "percent 0.0 is not in (0, 100]"),
        (("start", "2", "--mode", "canary", "--percent", "150"), "percent 150.0 is not in (0, 100]"),
        (("start", "2", "--percent", "many"), "Invalid value"),
    ],
)
def test_bad_input_is_a_usage_error_with_a_clear_message(args, message, home, monkeypatch) -> None:
    out = invoke(monkeypatch, home[0], *args)
    assert out.exit_code == 2, out.output
    assert message in out.output


def test_nothing_active_is_not_found(home, tmp_path, monkeypatch) -> None:
    db = {"MLOPS_AUDIT_DB_URL": f"sqlite:///{tmp_path / 'control.db'}"}
    for args in (("ramp",), ("abort", "--reason", "x"), ("promote", "--reason", "x")):
        out = invoke(monkeypatch, home[0], *args, **db)
        assert out.exit_code == 4 and "no active rollout for 'iris'" in out.output, out.output


def test_start_status_refused_promote_guard_and_abort(home, tmp_path, monkeypatch) -> None:
    root, production, candidate = home
    db = {
        "MLOPS_AUDIT_DB_URL": f"sqlite:///{tmp_path / 'control.db'}",
        "MLOPS_PREDICTION_LOG_URL": f"sqlite:///{tmp_path / 'predictions.db'}",
    }
    out = invoke(monkeypatch, root, "start", candidate, "--mode", "canary", "--percent", "10", **db)
    assert out.exit_code == 0, out.output
    assert f"v{candidate} in canary mode on 10 %" in out.output
    writer = EvidenceWriter(db["MLOPS_PREDICTION_LOG_URL"])
    writer.canary(candidate, production, ok=8, prod=20, latency_ms=3.0)
    writer.dispose()
    out = invoke(monkeypatch, root, "status", "--json", **db)
    assert out.exit_code == 0, out.output
    report = json.loads(out.document)
    assert report["active"] and report["evidence"]["candidate"]["requests"] == 8
    out = invoke(monkeypatch, root, "status", **db)
    assert out.exit_code == 0 and f"rollout 1: v{candidate} in canary mode" in out.output
    out = invoke(monkeypatch, root, "promote", "--reason", "too early", **db)
    assert out.exit_code == 5 and "8 candidate requests, fewer than the 500 needed" in out.output
    out = invoke(monkeypatch, root, "guard", "--once", "--json", **db)
    assert out.exit_code == 0 and json.loads(out.document) == []
    out = invoke(monkeypatch, root, "abort", "--reason", "seen enough", **db)
    assert out.exit_code == 0 and "aborted (candidate alias: dropped)" in out.output
    out = invoke(monkeypatch, root, "status", **db)
    assert out.exit_code == 0 and "ended aborted" in out.output
    assert Registry(Settings(home=root), "iris").alias_version("production") == production


def test_a_store_outage_exits_75_with_the_cause_not_a_traceback(home, monkeypatch) -> None:
    down = {"MLOPS_AUDIT_DB_URL": "postgresql://postgres@127.0.0.1:1/control"}
    for args in (("status",), ("abort", "--reason", "x"), ("start", home[2], "--mode", "canary")):
        out = invoke(monkeypatch, home[0], *args, **down)
        assert out.exit_code == 75, out.output
        assert "a store cannot be reached" in out.output and "Traceback" not in out.output
