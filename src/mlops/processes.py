"""Child processes a command starts, and stopping all of them on Ctrl-C, SIGTERM and SIGHUP.

Commands that start servers (`mlops demo`, `mlops ui`) put each server in its own process group
(``start_new_session``), so a Ctrl-C in the terminal reaches only the command, never a server in
the middle of its start-up. The price is that nothing reaches the servers unless the command
passes it on: a SIGTERM to `make demo`'s process group used to leave the service running on its
port. ``Children`` is the one place that passes it on: inside ``with Children() as children``,
SIGINT, SIGTERM and SIGHUP raise ``Stopped`` (a ``KeyboardInterrupt``, so code that already handles
Ctrl-C handles all three), and leaving the block for any reason (a signal, an exception, a normal
return) sends SIGTERM to every child's process group, then SIGKILL to what is left after a grace.

Only the standard library: every layer above may use it. A SIGKILL to the command itself cannot be
passed on (nothing runs): the children then stay, and their groups are what to stop by hand.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO, Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """SIGINT, SIGTERM or SIGHUP reached the command: it stops what it started and exits."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class ChildFailed(RuntimeError):
    """A child exited or never became ready; the message names its log file when it has one."""


@dataclass
class Child:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path | None = None
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pgid(self) -> int:
        return self.popen.pid  # the leader of its own session and process group

    def running(self) -> bool:
        return self.popen.poll() is None

    def describe(self, what: str) -> str:
        """``what`` happened to this child, with where its log is (when it has one)."""
        where = f"; its log: {self.log}" if self.log else ""
        return f"{self.name} (pid {self.popen.pid}) {what}{where}"


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` is still there (the leader may have exited first)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class Children:
    """The child processes of one command, each in its own process group, stopped together."""

    def __init__(self, grace_s: float = 20.0) -> None:
        self.grace_s = grace_s
        self.children: list[Child] = []
        self._previous: dict[int, Any] = {}
        self._stopping = False

    # ----- signals -----
    def __enter__(self) -> Children:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            self.stop()
        finally:
            for sig, handler in self._previous.items():
                signal.signal(sig, handler)
            self._previous.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self._stopping:  # a second signal while stopping must not cut the stop short
            raise Stopped(signum)

    # ----- children -----
    def start(
        self,
        name: str,
        cmd: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        log: Path | None = None,
    ) -> Child:
        """Start ``cmd`` in a new session (its own process group); output to ``log`` when given,
        else to this command's own stdout/stderr."""
        log_file = None
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            log_file = log.open("wb")
        try:
            popen = subprocess.Popen(
                list(cmd),
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT if log_file else None,
                start_new_session=True,
            )
        except BaseException:
            if log_file:
                log_file.close()
            raise
        child = Child(name, popen, log, log_file)
        self.children.append(child)
        return child

    def wait(self, poll_s: float = 0.5) -> Child:
        """Block until one child exits (a signal interrupts it with ``Stopped``); returns that child."""
        while True:
            for child in self.children:
                if not child.running():
                    return child
            time.sleep(poll_s)

    def stop(self) -> None:
        """SIGTERM every child's group, wait up to the grace for all of them, SIGKILL the rest."""
        self._stopping = True
        try:
            live = [c for c in self.children if c.running() or group_alive(c.pgid)]
            for child in live:
                _signal_group(child.pgid, signal.SIGTERM)
            deadline = time.monotonic() + self.grace_s
            for child in live:
                if not _wait_group(child, deadline):
                    _signal_group(child.pgid, signal.SIGKILL)
                    _wait_group(child, time.monotonic() + 10)
        finally:
            for child in self.children:
                if child._log_file:
                    child._log_file.close()
            self._stopping = False


def _wait_group(child: Child, deadline: float) -> bool:
    """Reap the leader and wait for the rest of its group; False if anything is left at ``deadline``."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
    while group_alive(child.pgid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return child.popen.poll() is not None


def wait_http(url: str, child: Child, timeout: float, ok: Sequence[int] = (200,)) -> None:
    """Poll ``url`` until it answers one of ``ok``; ``ChildFailed`` naming the child's log if the
    child exits first or ``timeout`` seconds pass."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"not an HTTP URL: {url}")
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not child.running():
            raise ChildFailed(child.describe(f"exited with code {child.popen.returncode}"))
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (http(s) checked above)
                if response.status in ok:
                    return
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            if exc.code in ok:
                return
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.3)
    raise ChildFailed(child.describe(f"did not answer {url} within {timeout:.0f} s ({last})"))
