"""`kill -9` of a training run at each of its eight steps: no alias moves, the audit log tells, the
next run works.

The registry starts empty, so any run that reached its compare-and-set would have created the
``production`` alias (a first passing model is always promoted): the kills are checked against a run
that would have moved it. Each step is caught as it starts by polling the run's ZenML store (the CLI
keeps ZenML's own log lines quiet), then the whole process group gets SIGKILL.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from mlops.configure import configure_libraries
from mlops.registry import Registry
from mlops.settings import Settings
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


def _running_step(zenml_db: Path, step: str, since: str) -> bool:
    if not zenml_db.exists():
        return False
    with sqlite3.connect(f"file:{zenml_db}?mode=ro", uri=True, timeout=1) as db:
        query = "SELECT 1 FROM step_run WHERE name = ? AND status = 'running' AND created >= ?"
        try:
            return db.execute(query, (step, since)).fetchone() is not None
        except sqlite3.OperationalError:  # locked, or tables not created yet
            return False


def _kill_at(step: str, env: dict[str, str], zenml_db: Path, log: Path) -> None:
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [MLOPS, "train", "--json"], env=env, stdout=out, stderr=out, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 180
        while not _running_step(zenml_db, step, since):
            assert proc.poll() is None, (
                f"the run ended before step {step} was seen:\n{log.read_text()[-2000:]}"
            )
            assert time.monotonic() < deadline, f"step {step} never started"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _mlops(args: list[str], env: dict[str, str]) -> str:
    out = subprocess.run([MLOPS, *args], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    return out.stdout


def test_training_killed_at_every_step(tmp_path, figures) -> None:
    home = tmp_path / "state"
    env = service_env(home)
    settings = configure_libraries(Settings(home=home, actor="pytest"))
    registry = Registry(settings, "iris")
    zenml_db = home / "zenml" / "local_stores" / "default_zen_store" / "zenml.db"
    log = tmp_path / "killed-runs.log"

    for step in STEPS:
        _kill_at(step, env, zenml_db, log)
        assert registry.aliases() == {}, f"an alias moved although the run was killed in {step}"

    events = json.loads(_mlops(["audit", "--json"], env))  # reconciles the last killed run
    dead = [e for e in events if e["action"] == "pipeline" and e["details"].get("reconciled")]
    assert [e["decision"] for e in dead] == ["failed"] * len(STEPS)
    assert [e["details"]["step"] for e in dead] == STEPS, [e["reason"] for e in dead]
    assert all("is gone (killed)" in e["reason"] for e in dead)
    again = json.loads(_mlops(["audit", "--json"], env))
    assert len(again) == len(events), "reconciling twice must not audit a death twice"
    with sqlite3.connect(zenml_db) as db:
        statuses = [s for (s,) in db.execute("SELECT status FROM pipeline_run ORDER BY created")]
    assert statuses == ["failed"] * len(STEPS), statuses

    result = json.loads(_mlops(["train", "--json"], env))  # the next run works, and promotes
    assert result["promotion"]["outcome"] == "promoted", result["promotion"]
    assert registry.alias_version("production") == result["model"]["version"]
    figures(
        kills=len(STEPS),
        steps_covered=STEPS,
        alias_moves_while_killed=0,
        failures_audited=len(dead),
        zenml_runs_marked_failed=statuses.count("failed"),
        next_run=result["promotion"]["outcome"],
    )
