"""`kill -9` of `mlops train` at each of its nine steps, with a production model in place: no alias
moves, the audit log names every death once, the ZenML runs are marked failed, the next run works.

The production model is a weak one (a tenth of its training labels flipped). Every run that
finished would move an alias: ``production`` if shown better on the sealed slice, else ``challenger``
(on iris's 33 sealed rows it is kept: the interval contains 0); so each kill, at ``promote_model``
too, stops a run that would have moved one. kill -9 runs no hook: the run's marker (pid, host,
ZenML run name) is all that is left, and the next command touching the project reconciles it.

The eight runs overlap (up to ``LANES`` at a time, each SIGKILLed as its own step starts): that keeps
the test within its budget on two cores, and checks that each death is pinned on its own run, not on
another live or dead run of the same pipeline. The ZenML store is created (migrated, default stack)
once before the lanes start: several processes opening a fresh local store race its initialisation
("The ZenML database has never been migrated with alembic before"), which a user's first runs never
do. A step is seen starting by polling the ZenML store for the run named in the process's marker;
then the process's whole group gets SIGKILL.
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

from mlops.configure import configure_libraries
from mlops.registry import Registry
from mlops.settings import Settings
from tests.integration.processes import MLOPS, service_env
from tests.support.training import TRAINING_STEPS as STEPS

ROOT = Path(__file__).resolve().parents[2]
LANES = 4


def _zenml_db(home: Path) -> Path:
    return Settings(home=home).state_dir / "zenml" / "local_stores" / "default_zen_store" / "zenml.db"


def _run_name(runs_dir: Path, pid: int) -> str | None:
    """The ZenML run name the process ``pid`` wrote in its marker (None: not written yet)."""
    for marker in runs_dir.glob("*.json"):
        try:
            facts = json.loads(marker.read_text())
        except (OSError, ValueError):
            continue  # being written, or being reconciled
        if facts["pid"] == pid:
            return str(facts["zenml_run_name"])
    return None


def _step_running(zenml_db: Path, run_name: str, step: str) -> bool:
    query = (
        "SELECT 1 FROM step_run s JOIN pipeline_run p ON s.pipeline_run_id = p.id "
        "WHERE p.name = ? AND s.name = ? AND s.status = 'running'"
    )
    with sqlite3.connect(f"file:{zenml_db}?mode=ro", uri=True, timeout=1) as db:
        try:
            return db.execute(query, (run_name, step)).fetchone() is not None
        except sqlite3.OperationalError:  # locked for a moment by a writer
            return False


def _kill_each_at_its_step(env: dict[str, str], home: Path, log: Path) -> dict[int, tuple[str, str]]:
    """Run ``mlops train`` once per step (``LANES`` at a time) and SIGKILL each run's process group
    as its step starts; returns pid -> (step, ZenML run name)."""
    runs_dir, zenml_db = Settings(home=home).state_dir / "runs", _zenml_db(home)
    waiting = list(reversed(STEPS))  # the longest runs first
    live: dict[int, tuple[subprocess.Popen[bytes], str]] = {}
    killed: dict[int, tuple[str, str]] = {}
    deadline = time.monotonic() + 300
    with log.open("ab") as out:
        try:
            while waiting or live:
                while waiting and len(live) < LANES:
                    proc = subprocess.Popen(
                        [MLOPS, "train", "--json"], env=env, stdout=out, stderr=out, start_new_session=True
                    )
                    live[proc.pid] = (proc, waiting.pop())
                for pid, (proc, step) in list(live.items()):
                    assert proc.poll() is None, f"run {pid} ended before {step}:\n{log.read_text()[-3000:]}"
                    name = _run_name(runs_dir, pid)
                    if name and _step_running(zenml_db, name, step):
                        os.killpg(pid, signal.SIGKILL)
                        assert proc.wait(timeout=30) == -signal.SIGKILL
                        killed[pid] = (step, name)
                        del live[pid]
                assert time.monotonic() < deadline, f"never saw {[s for _, s in live.values()]} start"
                time.sleep(0.05)
        finally:
            for proc, _ in live.values():
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
    return killed


def _mlops(args: list[str], env: dict[str, str]) -> object:
    out = subprocess.run([MLOPS, *args, "--json"], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    return json.loads(out.stdout)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """A state folder whose iris v1, trained on labels of which a tenth are flipped, holds
    ``production``, and whose ZenML store exists (in a subprocess: no shared singletons)."""
    home = tmp_path / "state"
    code = (
        "import numpy as np\n"
        "from mlops.projects import get_project\n"
        "from mlops.configure import configure_libraries\nfrom mlops.settings import Settings\n"
        "from tests.support.training import train_register_promote\n"
        f"settings = configure_libraries(Settings(home={str(home)!r}))\n"
        "spec = get_project('iris')\n"
        "frame = spec.load(settings)\n"
        "flip = np.random.default_rng(1).random(len(frame)) < 0.1\n"  # rng 0 fails a behaviour check
        "frame.loc[flip, spec.target] = (frame.loc[flip, spec.target] + 1) % 3\n"
        "train_register_promote(settings, 'iris', frame)\n"
        "from zenml.client import Client\n"
        "Client().active_stack_model  # creates and migrates the local ZenML store, once\n"
    )
    subprocess.run([sys.executable, "-c", code], env=service_env(home), cwd=ROOT, check=True, timeout=300)
    assert _zenml_db(home).exists()
    return home


def test_training_killed_at_every_step_moves_no_alias(home: Path, tmp_path: Path, figures) -> None:
    env = service_env(home)
    registry = Registry(configure_libraries(Settings(home=home, actor="pytest")), "iris")
    aliases = registry.aliases()
    assert aliases == {"production": "1"}

    started = time.monotonic()
    killed = _kill_each_at_its_step(env, home, tmp_path / "killed-runs.log")
    kill_seconds = time.monotonic() - started
    assert sorted(step for step, _ in killed.values()) == sorted(STEPS)
    assert len({name for _, name in killed.values()}) == len(STEPS), "each run has its own ZenML run"
    assert registry.aliases() == aliases, "an alias moved although every run was killed"

    events = _mlops(["audit", "--limit", "100"], env)  # reconciles what the later runs had not
    assert isinstance(events, list)
    dead = [e for e in events if e["details"].get("reconciled")]
    assert [(e["action"], e["decision"]) for e in dead] == [("pipeline", "failed")] * len(STEPS)
    pinned = {e["details"]["pid"]: (e["details"]["step"], e["details"]["zenml_run_name"]) for e in dead}
    assert pinned == killed, [e["reason"] for e in dead]
    for e in dead:
        assert f"died in step {e['details']['step']!r}" in e["reason"], e["reason"]
        assert f"process {e['details']['pid']} " in e["reason"] and "is gone (killed)" in e["reason"]
    assert _mlops(["audit", "--limit", "100"], env) == events, "a death must be audited once"
    with sqlite3.connect(_zenml_db(home)) as db:
        statuses = dict(db.execute("SELECT name, status FROM pipeline_run"))
    assert [statuses[name] for _, name in killed.values()] == ["failed"] * len(STEPS), statuses
    with (
        sqlite3.connect(Settings(home=home).state_dir / "audit.db") as db,
        pytest.raises(sqlite3.DatabaseError, match="append-only"),
    ):
        db.execute("DELETE FROM audit_log")

    result = _mlops(["train"], env)  # the next run works and moves the alias its decision names
    assert isinstance(result, dict) and result["status"] == "completed", result
    outcome, version = result["promotion"]["outcome"], result["model"]["version"]
    moved = {"promoted": {"production": version}, "kept": {"challenger": version}}
    assert outcome in moved, result["promotion"]
    assert registry.aliases() == {**aliases, **moved[outcome]}
    figures(
        kills=len(killed),
        steps_covered=STEPS,
        concurrent_runs=LANES,
        kill_phase_s=round(kill_seconds, 1),
        alias_moves_while_killed=0,
        audit_records=len(dead),
        zenml_runs_marked_failed=len(STEPS),
        next_run=result["promotion"]["outcome"],
    )
