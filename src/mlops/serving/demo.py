"""`mlops demo`: the production model over HTTP, end to end, in one command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
from rich.console import Console

from mlops.errors import MlopsError
from mlops.processes import Children
from mlops.settings import Settings


def run_demo(settings: Settings, project: str, port: int, *, smoke: bool, console: Console) -> dict[str, Any]:
    from mlops.projects import get_project

    spec = get_project(project)
    base = f"http://{settings.host}:{port}"
    env = {**os.environ, "MLOPS_PROJECT": project}
    cmd = [
        sys.executable,
        "-m",
        "mlops.cli",
        "serve",
        "--project",
        project,
        "--host",
        settings.host,
        "--port",
        str(port),
    ]
    # The service runs in its own process group (a Ctrl-C in the terminal reaches only this command);
    # ``Children`` passes Ctrl-C, SIGTERM and SIGHUP on to it and stops it on any way out of here.
    with Children() as children:
        service = children.start("service", cmd, env=env)
        try:
            _wait_ready(base, service.popen, timeout=90)
            response = httpx.post(f"{base}/predict", json=spec.example, timeout=10)
            response.raise_for_status()
            body: dict[str, Any] = response.json()
            console.print(f"[bold]POST {base}/predict[/] {json.dumps(spec.example)}")
            console.print_json(data=body)
            console.print(f"docs: {base}/docs   metrics: {base}/metrics   model: {base}/model/info")
            if smoke:
                return body
            console.print("[dim]serving; Ctrl-C to stop[/]")
            children.wait()
        except KeyboardInterrupt:  # Ctrl-C, SIGTERM or SIGHUP (mlops.processes.Stopped)
            return {}
    raise MlopsError(f"the service exited with code {service.popen.returncode}", hint="see its output above")


def stop_process_group(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM a server's process group (graceful: the prediction log drains), SIGKILL if it hangs
    (benchmarks/serving.py; commands use ``mlops.processes.Children``)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise MlopsError(f"the service exited with code {proc.returncode}", hint="see its output above")
        try:
            if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise MlopsError(f"the service was not ready within {timeout:.0f} s", hint=f"check {base}/ready")
