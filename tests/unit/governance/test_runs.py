"""Dead runs are audited once; live ones and other machines' ones are left alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from mlops.governance.runs import _started, reconcile, tracked
from mlops.stores.audit import AuditLog


def _marker(settings, pid: int, started: float | None, host: str | None = None) -> None:
    import socket

    folder = settings.state_dir / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    facts = {
        "pid": pid,
        "process_started": started,
        "host": host or socket.gethostname(),
        "project": "iris",
        "pipeline": "training_pipeline",
        "started_at": "2026-01-01T00:00:00+00:00",
        "zenml_run_name": f"training_pipeline-killed-before-its-run-{pid}",
    }
    (folder / f"{pid}-{host}.json").write_text(json.dumps(facts))


def test_a_dead_run_is_audited_exactly_once(settings) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    pid = int(dead.stdout)
    _marker(settings, pid, 12345.0)  # that process has exited
    _marker(settings, os.getpid(), _started(os.getpid()))  # this one lives
    _marker(settings, pid, 12345.0, host="another-machine")  # not ours to judge

    events = reconcile(settings)
    assert [(e.action, e.decision) for e in events] == [("pipeline", "failed")]
    assert f"process {pid}" in events[0].reason and events[0].details["reconciled"] is True
    assert "step" not in events[0].details  # killed before ZenML created its run
    assert reconcile(settings) == []  # idempotent
    assert len(AuditLog(settings.audit_url).history()) == 1
    assert len(list((settings.state_dir / "runs").glob("*.json"))) == 2


def test_a_run_that_returns_leaves_no_marker(settings) -> None:
    with tracked(settings, "iris", "training_pipeline") as run_name:
        (marker,) = (settings.state_dir / "runs").glob("*.json")
        assert json.loads(marker.read_text())["zenml_run_name"] == run_name
    assert list((settings.state_dir / "runs").glob("*.json")) == []
    assert reconcile(settings) == []
