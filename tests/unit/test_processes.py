"""``mlops.processes.Children``: every child's whole process group stops, however the command ends.

Real processes throughout: a child that starts a grandchild in its group (as uvicorn's supervisor
starts workers), a child that ignores SIGTERM, and a parent process that is signalled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mlops.processes import ChildFailed, Children, Stopped, group_alive, wait_http

# A child that starts a grandchild in its own process group, writes both pids, then sleeps.
FAMILY = textwrap.dedent(
    """
    import subprocess, sys, time
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    open(sys.argv[1], "w").write(f"{grandchild.pid}\\n")
    time.sleep(600)
    """
)
STUBBORN = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(600)"
)


def _wait_file(path: Path, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().endswith("\n"):
            return path.read_text().strip()
        time.sleep(0.05)
    raise AssertionError(f"{path} was not written within {timeout} s")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its new parent) counts as gone
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


def _gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_stop_ends_the_child_and_its_grandchild(tmp_path: Path) -> None:
    with Children(grace_s=10) as children:
        child = children.start("family", [sys.executable, "-c", FAMILY, str(tmp_path / "pid")])
        grandchild = int(_wait_file(tmp_path / "pid"))
        assert os.getpgid(child.popen.pid) == child.popen.pid != os.getpgid(0)  # its own group
        assert os.getpgid(grandchild) == child.pgid
    assert child.popen.returncode == -signal.SIGTERM
    assert not group_alive(child.pgid) and _gone(grandchild)


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace(tmp_path: Path) -> None:
    log = tmp_path / "stubborn.log"
    children = Children(grace_s=1.0)
    with children:
        child = children.start("stubborn", [sys.executable, "-c", STUBBORN], log=log)
        _wait_until(lambda: "ready" in log.read_text())
        started = time.monotonic()
    assert child.popen.returncode == -signal.SIGKILL
    assert time.monotonic() - started >= 1.0  # SIGTERM first, SIGKILL only after the grace
    assert not group_alive(child.pgid)


def test_an_exception_in_the_block_still_stops_every_child(tmp_path: Path) -> None:
    with pytest.raises(ZeroDivisionError), Children() as children:
        first = children.start("a", [sys.executable, "-c", "import time; time.sleep(600)"])
        second = children.start("b", [sys.executable, "-c", "import time; time.sleep(600)"])
        _ = 1 / 0
    assert first.popen.returncode == second.popen.returncode == -signal.SIGTERM
    assert not group_alive(first.pgid) and not group_alive(second.pgid)


def test_signal_handlers_are_put_back_and_signals_raise_stopped_inside() -> None:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    with pytest.raises(KeyboardInterrupt) as caught, Children():
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(5)  # interrupted by the handler
    assert isinstance(caught.value, Stopped) and caught.value.signum == signal.SIGHUP
    assert {sig: signal.getsignal(sig) for sig in before} == before


# A parent command: starts a family of processes, prints "up", then waits (as `mlops ui` does).
PARENT = textwrap.dedent(
    """
    import sys
    from mlops.processes import Children
    family = sys.argv[1]
    try:
        with Children(grace_s=10) as children:
            children.start("family", [sys.executable, "-c", open(family).read(), sys.argv[2]])
            print("up", flush=True)
            children.wait()
    except KeyboardInterrupt:
        print("stopped", flush=True)
    """
)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_a_signal_to_the_parent_stops_children_in_other_groups(tmp_path: Path, sig: signal.Signals) -> None:
    family = tmp_path / "family.py"
    family.write_text(FAMILY)
    pids = tmp_path / "pid"
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(family), str(pids)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "up"
        grandchild = int(_wait_file(pids))
        child_group = os.getpgid(grandchild)
        assert child_group != parent.pid  # what a signal to the parent's group would not reach
        parent.send_signal(sig)
        out, _ = parent.communicate(timeout=30)
        assert parent.returncode == 0 and out.strip() == "stopped"
        assert not group_alive(child_group) and _gone(grandchild)
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
            parent.wait()


def test_wait_http_names_the_log_of_a_child_that_exits(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with Children() as children:
        child = children.start(
            "server", [sys.executable, "-c", "print('bad config'); raise SystemExit(3)"], log=log
        )
        with pytest.raises(ChildFailed, match=f"server .*exited with code 3.*{log}"):
            wait_http("http://127.0.0.1:9/health", child, timeout=30)
    assert "bad config" in log.read_text()


def test_wait_http_times_out_naming_the_url(tmp_path: Path) -> None:
    with Children() as children:
        child = children.start("silent", [sys.executable, "-c", "import time; time.sleep(600)"])
        with pytest.raises(ChildFailed, match=r"did not answer http://127.0.0.1:9/health within 1 s"):
            wait_http("http://127.0.0.1:9/health", child, timeout=1)


def _wait_until(predicate, timeout: float = 30) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
