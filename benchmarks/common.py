"""Helpers shared by the hot-swap and cold-start benchmarks (the serving benchmark's helpers are
imported from ``serving.py``, not copied): registered versions in a fresh state folder, servers
as pinned processes in their own process group, an open-loop load generator, result files."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving import BIN, ROOT, one_request, prepare, stop

__all__ = ["BIN", "ROOT", "one_request", "prepare", "stop"]
# The benchmarks run as scripts (``python benchmarks/x.py``): the repo root on sys.path makes the
# test-fixture builders in ``tests.support`` importable, here and in the subprocesses started with cwd=ROOT.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def __getattr__(name: str) -> Any:
    """``from common import train_register_promote``: imported on first use (it pulls in sklearn and
    MLflow, which the benchmarks' parent processes otherwise never import)."""
    if name == "train_register_promote":
        from tests.support.training import train_register_promote

        return train_register_promote
    raise AttributeError(name)


RESULTS = ROOT / "benchmarks" / "results"
SERVER_CORE, CLIENT_CORE = 1, 0


def check_cores() -> None:
    """Servers run on core 1 and the measuring client on core 0, as in benchmarks/serving.py."""
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        sys.exit("needs taskset and 2 cores (servers on core 1, the measuring client on core 0)")
    os.sched_setaffinity(0, {CLIENT_CORE})


def pinned(cmd: list[str]) -> list[str]:
    return ["taskset", "-c", str(SERVER_CORE), *cmd]


def launch(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A server in its own session (stopped by process group with ``stop``), output appended to ``log``."""
    with log.open("ab") as fh:
        return subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )


def ours_command(port: int, workers: int = 1) -> list[str]:
    return [str(BIN / "mlops"), "serve", "--project", "iris", "--port", str(port), "--workers", str(workers)]


def mlflow_command(port: int, model_uri: str) -> list[str]:
    serve = [str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local"]
    return [*serve, "-h", "127.0.0.1", "-p", str(port)]


def register_another_version(env: dict[str, str], production: str) -> str:
    """Train and register one more iris version (another seed) and leave ``production`` where it was."""
    code = (
        "import json, sys\n"
        "from mlops.configure import configure_libraries\nfrom mlops.settings import get_settings\n"
        "from tests.support.training import train_register_promote\n"
        "from mlops.registry import Registry\n"
        "s = configure_libraries(get_settings())\n"
        "m = train_register_promote(s, 'iris', seed=s.seed + 1)['model']\n"
        "r = Registry(s, 'iris')\n"
        "r.client.set_registered_model_alias(r.name, 'production', sys.argv[1])\n"
        "print(json.dumps(m))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, production],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return str(json.loads(out.stdout.strip().splitlines()[-1])["version"])


# ----- open-loop load: a fixed request rate, a new connection per request -----
@dataclass
class Sample:
    sent: float  # time.perf_counter() of the connect
    received: float
    status: int  # 0: connection refused, reset or timed out
    version: str | None  # the model version the response names, when it names one


async def open_loop(
    port: int,
    path: str,
    body: bytes,
    rate: float,
    stop_event: asyncio.Event,
    samples: list[Sample],
    timeout: float = 5.0,
) -> None:
    """Send ``rate`` requests per second until ``stop_event``, whatever the answers: failures do not
    slow the senders down (unlike a closed loop), so failed requests measure the time without service.
    A fresh connection per request spreads the requests over every worker of a multi-worker server."""

    async def one() -> None:
        sent = time.perf_counter()
        try:
            status, answer = await asyncio.wait_for(one_request(port, path, body), timeout)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            samples.append(Sample(sent, time.perf_counter(), 0, None))
            return
        version = None
        if status == 200 and answer.startswith(b"{"):
            version = json.loads(answer).get("model_version")
        samples.append(Sample(sent, time.perf_counter(), status, version))

    await paced(one, rate, stop_event)


async def paced(one: Callable[[], Awaitable[None]], rate: float, stop_event: asyncio.Event) -> None:
    """Start ``one()`` ``rate`` times per second, on schedule whatever the answers, until
    ``stop_event``; then wait for the ones still running."""
    tasks: set[asyncio.Task[None]] = set()
    begin = time.perf_counter()
    i = 0
    while not stop_event.is_set():
        delay = begin + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        i += 1
    if tasks:
        await asyncio.wait(tasks)


def timeline(samples: list[Sample], origin: float, start: float, end: float) -> dict[str, list[Any]]:
    """The samples sent between ``start`` and ``end`` s after ``origin`` (the event under test), as
    columns (send time, status, version): compact enough to keep in the results file for plots."""
    rows = sorted((s.sent - origin, s.status, s.version) for s in samples if start <= s.sent - origin <= end)
    return {
        "sent": [round(sent, 3) for sent, _, _ in rows],
        "status": [status for _, status, _ in rows],
        "version": [version for _, _, version in rows],
    }


# ----- results -----
def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}


def write_results(name: str, report: dict[str, Any], indent: int | None = 2) -> Path:
    path = RESULTS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine(), **report}, indent=indent) + "\n")
    return path
