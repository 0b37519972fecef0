"""Commands that start servers stop everything they started on SIGTERM, SIGHUP and SIGINT.

`mlops demo` runs the service in its own process group: a signal to the demo (or to its group, as
`make demo` stopped by its parent gets) must reach the service. `mlops serve --workers 2`: the
supervisor stops its workers on each of the three (uvicorn's own restarts them on SIGHUP), and a
worker leaves SIGHUP to the supervisor (a closed terminal signals the whole group). Checked from the
outside: the port closes and no process of theirs is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlops.processes import group_alive
from tests.integration.processes import MLOPS, fresh_settings, promote_new_version, service_env, start_service

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A state folder whose registry has a production iris model."""
    before = dict(os.environ)
    try:
        settings = fresh_settings(tmp_path_factory.mktemp("signals"))
        promote_new_version(settings, seed=7)
        yield settings.home
    finally:
        os.environ.clear()
        os.environ.update(before)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def serving_processes(port: int) -> list[int]:
    """Live `mlops serve` processes on ``port`` (zombies count as gone)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["status"] != psutil.STATUS_ZOMBIE and "serve" in cmdline and str(port) in cmdline:
            found.append(proc.info["pid"])
    return found


def until(predicate, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return bool(predicate())


@contextlib.contextmanager
def demo(home: Path, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [MLOPS, "demo", "--no-train", "--port", str(port)],
            env=service_env(home),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        assert until(lambda: b"serving; Ctrl-C to stop" in log.read_bytes() or proc.poll() is not None, 300)
        assert proc.poll() is None, log.read_text()[-4000:]
        yield proc, port
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        for pid in serving_processes(port):  # only if the test failed: never leave a service behind
            with contextlib.suppress(ProcessLookupError):
                os.killpg(os.getpgid(pid), signal.SIGKILL)


@pytest.mark.parametrize(
    ("sig", "to_group"),
    [(signal.SIGTERM, True), (signal.SIGHUP, True), (signal.SIGINT, False), (signal.SIGTERM, False)],
    ids=["SIGTERM-group", "SIGHUP-group", "SIGINT", "SIGTERM"],
)
def test_a_signal_to_demo_stops_the_service_it_started(
    home: Path, tmp_path: Path, sig: signal.Signals, to_group: bool
) -> None:
    with demo(home, tmp_path / "demo.log") as (proc, port):
        (service,) = serving_processes(port)
        assert os.getpgid(service) != os.getpgid(proc.pid)  # its own group: the signal alone misses it
        assert httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5).status_code == 200
        if to_group:
            os.killpg(proc.pid, sig)  # what `make demo`'s group gets
        else:
            proc.send_signal(sig)
        proc.wait(timeout=90)
        assert proc.returncode == 0, (tmp_path / "demo.log").read_text()[-4000:]
        assert not port_open(port)
        assert serving_processes(port) == [] and not group_alive(service)


@pytest.mark.parametrize(
    ("sig", "to_group"),
    [(signal.SIGTERM, False), (signal.SIGHUP, False), (signal.SIGINT, False), (signal.SIGHUP, True)],
    ids=["SIGTERM", "SIGHUP", "SIGINT", "SIGHUP-group"],
)
def test_a_signal_to_serve_with_workers_stops_every_worker(
    home: Path, tmp_path: Path, sig: signal.Signals, to_group: bool
) -> None:
    proc, base = start_service(home, tmp_path, workers=2)
    port = int(base.rsplit(":", 1)[1])
    try:
        import psutil

        workers = psutil.Process(proc.popen.pid).children()
        assert len(workers) >= 2 and len(serving_processes(port)) >= 1
        if to_group:
            os.killpg(proc.popen.pid, sig)  # a closed terminal: supervisor and workers alike
        else:
            proc.popen.send_signal(sig)
        proc.popen.wait(timeout=90)
        assert proc.popen.returncode == 0, proc.tail()
        assert not port_open(port)
        assert until(lambda: not group_alive(proc.popen.pid), 10), "a worker outlived the supervisor"
    finally:
        proc.stop()


def test_a_worker_leaves_sighup_to_its_supervisor(home: Path, tmp_path: Path) -> None:
    import psutil

    proc, base = start_service(home, tmp_path, workers=2)
    try:
        supervisor = psutil.Process(proc.popen.pid)
        workers = {p.pid for p in supervisor.children() if "spawn_main" in " ".join(p.cmdline())}
        assert len(workers) == 2, supervisor.children()
        os.kill(min(workers), signal.SIGHUP)
        time.sleep(3)  # uvicorn's supervisor checks its workers every 0.5 s
        still = {p.pid for p in supervisor.children() if "spawn_main" in " ".join(p.cmdline())}
        assert still == workers  # ignored: not killed (and replaced by the supervisor)
        assert httpx.get(f"{base}/ready", timeout=5).status_code == 200
    finally:
        proc.stop()
