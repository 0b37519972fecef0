"""Start real servers as processes on loopback and always stop them (by process group, never by name)."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from prometheus_client.samples import Sample

    from mlops.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    def __init__(
        self, name: str, cmd: list[str], env: dict[str, str], log_dir: Path, cwd: Path | None = None
    ):
        self.name = name
        self.log = log_dir / f"{name}.log"
        self._fh = self.log.open("wb")
        self.popen = subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=self._fh, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_http(self, url: str, timeout: float = 60.0, ok: tuple[int, ...] = (200,)) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")
            try:
                response = httpx.get(url, timeout=2.0)
                if response.status_code in ok:
                    return
                last = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                last = str(exc)
            time.sleep(0.3)
        raise TimeoutError(f"{self.name} not ready at {url} after {timeout}s ({last}):\n{self.tail()}")

    def tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def freeze(self) -> None:
        """SIGSTOP the process group: its sockets stay open and nothing answers (a hung server)."""
        os.killpg(self.popen.pid, signal.SIGSTOP)

    def kill(self) -> None:
        """SIGKILL the whole process group: a crash, no graceful anything."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM the process group; SIGKILL it if it is still there after ``grace`` seconds (longer
        than the service's own graceful-shutdown limit, so a slow drain is not cut short here)."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=5)
        self._fh.close()


# ----- the service and MLflow as processes, and load against the service -----

MLOPS = str(Path(sys.executable).parent / "mlops")
EXAMPLE = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
ADMIN_KEY = "integration-admin-key"


@functools.cache
def _migrated_mlflow_db() -> Path:
    """An empty MLflow database with its schema migrated, made once per session: the migrations cost
    3-10 s per fresh SQLite file, and every test here starts from a fresh registry."""
    from mlflow import MlflowClient

    path = Path(tempfile.mkdtemp(prefix="mlflow-template-")) / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


def empty_mlflow_db(target: Path) -> Path:
    """Copy the migrated empty MLflow database to ``target`` (a new registry, ready at once)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_migrated_mlflow_db(), target)
    return target


def fresh_settings(tmp_path: Path, **extra: Any) -> Settings:
    """Settings with an empty state folder under ``tmp_path`` (its MLflow database already migrated),
    applied to this process's environment."""
    from mlops.configure import configure_libraries
    from mlops.settings import Settings

    settings = Settings(home=tmp_path / "state", actor="pytest", **extra)
    if not settings.tracking_uri:
        empty_mlflow_db(settings.state_dir / "mlflow.db")
    return configure_libraries(settings)


def service_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    return {
        **env,
        "MLOPS_HOME": str(home),
        "ZENML_CONFIG_PATH": str(home / "zenml"),
        "MLOPS_ADMIN_API_KEY": ADMIN_KEY,
        **extra,
    }


def start_service(
    home: Path, log_dir: Path, *, workers: int = 1, ready: tuple[int, ...] = (200,), **env: str
) -> tuple[Proc, str]:
    """``mlops serve`` once ``/ready`` answers one of ``ready`` (503: up, but with no model)."""
    port = free_port()
    cmd = [sys.executable, "-m", "mlops.cli", "serve", "--project", "iris", "--port", str(port)]
    proc = Proc("service", [*cmd, "--workers", str(workers)], service_env(home, **env), log_dir)
    base = f"http://127.0.0.1:{port}"
    try:
        proc.wait_http(f"{base}/ready", timeout=120, ok=ready)
    except BaseException:
        proc.stop()
        raise
    return proc, base


@dataclass
class Result:
    sent: float
    received: float
    status: int  # 0 = transport error
    version: str | None
    error: str = ""
    request_id: str | None = None


def failed(results: list[Result]) -> list[Result]:
    return [r for r in results if r.status != 200]


def latency_ms(results: list[Result], q: float) -> float:
    """The ``q`` quantile (0-1) of the answered requests' latency, in milliseconds."""
    times = sorted(r.received - r.sent for r in results if r.status == 200)
    return round(1000 * times[min(len(times) - 1, int(q * len(times)))], 2) if times else float("nan")


@dataclass
class LoadGenerator:
    """Threads with keep-alive clients posting /predict until stopped (bounded by max_seconds).

    ``interval`` paces each thread to at most one request per ``interval`` seconds: steady load
    that leaves CPU to whatever runs beside the service (a training job, an MLflow server starting).
    """

    base: str
    threads: int = 4
    max_seconds: float = 120.0
    interval: float = 0.0
    results: list[Result] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _workers: list[threading.Thread] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> LoadGenerator:
        for i in range(self.threads):
            t = threading.Thread(target=self._run, name=f"load-{i}", daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(timeout=30)

    def _run(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        with httpx.Client(base_url=self.base, timeout=10) as client:
            while not self._stop.is_set() and time.monotonic() < deadline:
                sent = time.monotonic()
                try:
                    r = client.post("/predict", json=EXAMPLE)
                    body = r.json() if r.status_code == 200 else {}
                    version, request_id = body.get("model_version"), body.get("request_id")
                    error = "" if version else r.text
                    result = Result(sent, time.monotonic(), r.status_code, version, error, request_id)
                except httpx.HTTPError as exc:
                    result = Result(sent, time.monotonic(), 0, None, repr(exc))
                with self._lock:
                    self.results.append(result)
                if self.interval:
                    self._stop.wait(self.interval - (time.monotonic() - sent))

    def snapshot(self) -> list[Result]:
        with self._lock:
            return list(self.results)

    def wait_for(self, predicate: Callable[[list[Result]], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.snapshot()):
                return True
            time.sleep(0.05)
        return False

    def converged(self, version: str, after: float, timeout: float = 30) -> bool:
        """Every worker answers with ``version``: the last 100 answers to requests sent after ``after``."""
        return self.wait_for(
            lambda rs: (
                len(later := [r for r in rs if r.sent > after]) >= 100
                and all(r.version == version for r in later[-100:])
            ),
            timeout=timeout,
        )


def metric_samples(base: str, name: str) -> list[Sample]:
    """The samples of metric ``name`` on the service's /metrics (one exposition over all workers)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{base}/metrics").text
    return [s for family in text_string_to_metric_families(text) for s in family.samples if s.name == name]


def swap_counts(base: str) -> dict[str, float]:
    """``mlops_model_swaps_total`` by result, summed over the service's workers."""
    return {s.labels["result"]: s.value for s in metric_samples(base, "mlops_model_swaps_total")}


def promote_new_version(settings: Settings, seed: int) -> str:
    """Train and register a version and make it production (a tie keeps the champion: move it)."""
    from mlops.registry import Registry
    from tests.support.training import train_register_promote

    registry = Registry(settings, "iris")
    version = str(train_register_promote(settings, "iris", seed=seed)["model"]["version"])
    current = registry.alias_version("production")
    if current != version:
        registry.move_alias("production", expected=current, new=version)
    return version


def mlflow_server(root: Path, port: int, env: dict[str, str]) -> Proc:
    mlflow = str(Path(sys.executable).parent / "mlflow")
    store = root / "mlflow.db"
    if not store.exists():
        empty_mlflow_db(store)
    cmd = [mlflow, "server", "--backend-store-uri", f"sqlite:///{store}"]
    cmd += ["--default-artifact-root", (root / "artifacts").as_uri(), "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--workers", "1"]
    proc = Proc(f"mlflow-{port}", cmd, {**env, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, root)
    proc.wait_http(f"http://127.0.0.1:{port}/health", timeout=90)
    return proc
