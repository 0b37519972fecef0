"""`mlops monitor` at the boundary: a bad duration is refused with the fix before anything starts (no
ZenML, no store touched), and the command is listed by `mlops --help`."""

from __future__ import annotations

import os
import subprocess
import sys


def test_a_bad_duration_exits_2_with_the_fix_and_imports_nothing_heavy(tmp_path) -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from mlops.cli import app\n"
        "result = CliRunner().invoke(app, ['monitor', '--every', '5d'])\n"
        "print(result.exit_code)\n"
        "print(sorted(m for m in ('zenml', 'mlflow', 'evidently') if m in sys.modules))\n"
        "print(result.output)\n"
    )
    env = {**os.environ, "MLOPS_HOME": str(tmp_path / "state"), "COLUMNS": "300"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    exit_code, heavy, *text = out.stdout.splitlines()
    assert exit_code == "2" and heavy == "[]"
    assert "'5d' is not a duration" in "\n".join(text) and "30s, 10m or 1h" in "\n".join(text)
    assert not (tmp_path / "state").exists()  # refused before any state was created


def test_monitor_is_listed_by_help() -> None:
    from typer.testing import CliRunner

    from mlops.cli import app

    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0 and "monitor" in result.output
