"""`mlops train` in a pseudo-terminal, as a person runs it: every step of the run on screen with its
duration, no ZenML or MLflow line (they are in the run's log file and in ZenML's stored step logs);
then `mlops reproduce --json` on the version it made: stdout is one JSON document."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.pipeline

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
# What ZenML, MLflow and tqdm printed through the old spinner (issue 14), and their line formats.
THIRD_PARTY = (
    re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (DEBUG|INFO|WARNING|ERROR) ", re.M),  # MLflow, alembic
    re.compile(r"Failed to get list of installed Python packages"),
    re.compile(r"Failed to resolve installed pip version"),
    re.compile(r"Registered model .* already exists"),
    re.compile(r"uv\.lock"),
    re.compile(r"Downloading artifacts|\d+it/s\]"),  # tqdm
    re.compile(r"Setting the global active stack"),
    re.compile(r"Step `?\w+`? has (started|finished)"),  # ZenML's own step lines
)
DURATION = r"(\d+\.\d s|\d+ min \d\d s)"
# Lines a quiet run writes to its log file that ZenML stores in the run's logs too (written while
# the run is prepared or a step runs). The two "Failed ..." lines come from a virtualenv without pip
# (uv's, the project's); tqdm's bar goes once MLflow's progress bars are switched off.
STORED = (
    "Failed to get list of installed Python packages",
    "Failed to resolve installed pip version",
    "Downloading artifacts",
)


def _in_a_terminal(args: list[str], env: dict[str, str], timeout: float = 600) -> tuple[int, str]:
    """Run ``args`` with stdin, stdout and stderr on a pseudo-terminal 120 columns wide."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 120, 0, 0))
    proc = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        else:
            raise AssertionError(f"{args} did not finish in {timeout} s")
        return proc.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
            proc.wait()
        os.close(master)


def _screen_lines(raw: str) -> list[str]:
    """What stays readable: each redraw's last state of a line, without colour codes."""
    text = ANSI.sub("", raw)
    return [part for line in text.split("\n") for part in line.split("\r") if part.strip()]


def _stored_step_logs(run_name: str) -> str:
    """Every log file ZenML stored for the run and its steps, in the local artifact store."""
    from zenml.client import Client

    client = Client()
    run = client.get_pipeline_run(run_name, allow_name_prefix_match=False)
    store = Path(client.active_stack.artifact_store.path)
    logs = list(run.log_collection or [])
    for step in run.steps.values():
        logs += list(step.log_collection or [])
    texts = []
    for log in logs:
        uri = log.uri or str(store / "logs" / f"{log.id}.log")
        if Path(uri).is_file():
            texts.append(Path(uri).read_text(errors="replace"))
    return "\n".join(texts)


def test_train_in_a_terminal_shows_each_step_with_its_duration_and_no_library_line(settings) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")},
        "MLOPS_HOME": str(settings.state_dir),
        "TERM": "xterm-256color",
        "COLUMNS": "120",
    }
    for forced in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):  # rich's overrides
        env.pop(forced, None)
    code, raw = _in_a_terminal([sys.executable, "-m", "mlops", "train"], env)
    lines = _screen_lines(raw)
    screen = "\n".join(lines)
    assert code == 0, screen[-3000:]

    run_name = re.search(r"iris: run (training_pipeline-\S+)", screen)
    assert run_name, screen[-3000:]
    from zenml.client import Client

    steps = list(Client().get_pipeline_run(run_name[1], allow_name_prefix_match=False).steps)
    assert len(steps) >= 8, steps
    for step in steps:
        assert re.search(rf"✓\s+{step}\s+completed\s+{DURATION}", screen), (
            f"{step} not shown:\n{screen[-3000:]}"
        )
    assert re.search(rf"training iris: done \({len(steps)} steps, {DURATION}\)", screen)
    assert "\x1b[" in raw  # a terminal: the live table was drawn with colour and redraws
    for pattern in THIRD_PARTY:
        assert not pattern.search(screen), f"{pattern.pattern} on screen:\n{screen[-3000:]}"
    assert "model" in screen and "decision" in screen  # the summary, as before

    # Nothing lost: the libraries' output is in the run's log file, and ZenML still stores it.
    (log_file,) = (settings.state_dir / "logs").glob("train-*.log")
    written = log_file.read_text(errors="replace")
    produced = [marker for marker in STORED if marker in written]
    assert produced, f"no library line in {log_file}:\n{written[-2000:]}"
    stored = _stored_step_logs(run_name[1])
    for marker in produced:
        assert marker in stored, f"{marker!r} is in {log_file.name} but not in ZenML's step logs"

    # --json on the version it made: one document on stdout, no progress, no library line.
    out = subprocess.run(
        [sys.executable, "-m", "mlops", "reproduce", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["match"] is True
    for pattern in THIRD_PARTY:
        assert not pattern.search(out.stderr), out.stderr
