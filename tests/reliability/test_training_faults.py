"""`kill -9` of `mlops train` at each of its eight steps, with a production model in place.

kill -9 runs no hook: the run's own marker (pid, host) is all that is left, and the next command
touching the project reconciles it. Each kill is checked on its own (no alias moved); the next
`mlops train` reconciles the previous death as it starts and is itself killed one step further on;
`mlops status` reconciles the last one. Steps are caught as they start by polling the run's ZenML
store (the CLI keeps ZenML's log lines quiet), then the whole process group gets SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlops.registry import Registry
from mlops.settings import Settings, apply_environment
from tests.integration.processes import MLOPS, service_env

STEPS = [
    "load_data",
    "validate_data",
    "split_data",
    "train_model",
    "evaluate_model",
    "export_onnx",
    "register_model",
    "promote_model",
]


def _step_running(zenml_db: Path, step: str, since: str) -> bool:
    if not zenml_db.exists():
        return False
    with sqlite3.connect(f"file:{zenml_db}?mode=ro", uri=True, timeout=1) as db:
        query = "SELECT 1 FROM step_run WHERE name = ? AND status = 'running' AND created >= ?"
        try:
            return db.execute(query, (step, since)).fetchone() is not None
        except sqlite3.OperationalError:  # locked, or the tables are not created yet
            return False


def _kill_at(step: str, env: dict[str, str], zenml_db: Path, log: Path) -> None:
    """Start `mlops train` in its own process group and SIGKILL the group once ``step`` runs."""
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [MLOPS, "train", "--json"], env=env, stdout=out, stderr=out, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 180
        while not _step_running(zenml_db, step, since):
            assert proc.poll() is None, f"the run ended before {step} started:\n{log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"step {step} never started"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _mlops(args: list[str], env: dict[str, str]) -> object:
    out = subprocess.run([MLOPS, *args, "--json"], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    return json.loads(out.stdout)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A state folder whose iris v1 holds ``production`` (trained in a subprocess: no shared singletons)."""
    home = tmp_path / "state"
    code = (
        "from mlops.lifecycle import train_register_promote\n"
        "from mlops.settings import Settings, apply_environment\n"
        f"train_register_promote(apply_environment(Settings(home={str(home)!r})), 'iris')\n"
    )
    subprocess.run([sys.executable, "-c", code], env=service_env(home), check=True, timeout=300)
    return home


def test_training_killed_at_every_step_moves_no_alias(home: Path, tmp_path: Path, figures) -> None:
    env = service_env(home)
    registry = Registry(apply_environment(Settings(home=home, actor="pytest")), "iris")
    aliases = registry.aliases()
    assert "production" in aliases
    zenml_db = home / "zenml" / "local_stores" / "default_zen_store" / "zenml.db"
    log = tmp_path / "killed-runs.log"

    for step in STEPS:
        _kill_at(step, env, zenml_db, log)
        assert registry.aliases() == aliases, f"an alias moved although the run was killed in {step}"

    status = _mlops(["status"], env)  # reconciles the last death; train reconciled each earlier one
    assert isinstance(status, dict) and status["dead_runs_reconciled"] == 1, status
    events = _mlops(["audit", "--limit", "100"], env)
    assert isinstance(events, list)
    dead = [e for e in events if e["decision"] == "failed" and e["details"].get("reconciled")]
    assert sorted(e["details"]["step"] for e in dead) == sorted(STEPS), [e["reason"] for e in dead]
    assert all(f"process {e['details']['pid']}" in e["reason"] for e in dead)
    assert _mlops(["audit", "--limit", "100"], env) == events, "a death must be audited once"
    with sqlite3.connect(zenml_db) as db:
        statuses = [s for (s,) in db.execute("SELECT status FROM pipeline_run ORDER BY created")]
    assert statuses[-len(STEPS) :] == ["failed"] * len(STEPS), statuses
    audit_db = home / "audit.db"
    with sqlite3.connect(audit_db) as db, pytest.raises(sqlite3.DatabaseError, match="append-only"):
        db.execute("DELETE FROM audit_log")

    result = _mlops(["train"], env)  # the next run works
    assert isinstance(result, dict) and result["status"] == "completed", result
    moved = result["promotion"]["outcome"] == "promoted"
    expected = result["model"]["version"] if moved else aliases["production"]
    assert registry.alias_version("production") == expected
    figures(
        kills=len(STEPS),
        steps_covered=STEPS,
        alias_moves_while_killed=0,
        run_failed_records=len(dead),
        zenml_runs_marked_failed=statuses.count("failed"),
        next_run=result["promotion"]["outcome"],
    )
