"""Online serving throughput and latency: `mlops serve` against `mlflow models serve` and an HTTP floor.

(No ``from __future__ import annotations`` here: the floor's FastAPI route needs a real annotation.)

Three servers answer the same single-row iris request with the same registered model (a 50-tree
RandomForest) on loopback:

- ``mlflow``: ``mlflow models serve -m models:/<name>/<version> --env-manager local`` (the user's
  alternative; pyfunc -> scikit-learn), request ``{"dataframe_records": [row]}`` on ``/invocations``;
- ``ours``: ``mlops serve`` (ONNX runtime, Prometheus metrics, prediction log to SQLite, request ids);
- ``floor``: a bare FastAPI endpoint with the same generated request schema and a constant answer
  (no model, no metrics, no log): what HTTP + validation alone cost under the same uvicorn;
- ``before`` (with ``--baseline COMMIT``): ``mlops serve`` as it was at that commit (its ``src/``
  exported with ``git archive`` and put first on ``PYTHONPATH``), to compare a change with ``ours``.

Each server is one process pinned to core 1 (``taskset -c 1``); the load generator (asyncio over raw
keep-alive sockets, ``--connections`` of them, each sending its next request when the previous answer
is complete) is pinned to core 0. Every run is a fresh server process, servers alternate, each run is
warmed up before it is measured; figures are medians over ``--runs`` runs.

    .venv/bin/python benchmarks/serving.py [--runs 3] [--seconds 10] [--connections 16]
    .venv/bin/python benchmarks/serving.py --baseline 343c736 --servers before ours --runs 5 --seconds 5
"""

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SERVERS = ("mlflow", "ours", "floor", "before")
EXAMPLE = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


# ----- the HTTP floor: same schema, same uvicorn, no model -----
def floor_app() -> Any:
    from fastapi import FastAPI

    from mlops.serving.schemas import Prediction, row_model

    Row = row_model("iris")
    app = FastAPI()
    answer = {"setosa": 1.0, "versicolor": 0.0, "virginica": 0.0}

    @app.post("/predict", response_model=Prediction)
    async def predict(row: Row) -> Prediction:  # type: ignore[valid-type]
        return Prediction(
            prediction=0, label="setosa", probabilities=answer, model_version="1", request_id="x"
        )

    return app


def run_floor(port: int) -> None:
    import uvicorn

    uvicorn.run(floor_app(), host="127.0.0.1", port=port, log_level="warning")


# ----- servers -----
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_command(kind: str, port: int, model_uri: str) -> tuple[list[str], str, bytes]:
    """Command, request path and request body of one server."""
    pin = ["taskset", "-c", "1"]
    if kind == "mlflow":
        cmd = [str(BIN / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local"]
        body = json.dumps({"dataframe_records": [EXAMPLE]}).encode()
        return [*pin, *cmd, "-h", "127.0.0.1", "-p", str(port)], "/invocations", body
    if kind in {"ours", "before"}:
        cmd = [sys.executable, "-m", "mlops.cli", "serve", "--project", "iris", "--port", str(port)]
        return [*pin, *cmd], "/predict", json.dumps(EXAMPLE).encode()
    return (
        [*pin, sys.executable, __file__, "--floor-server", str(port)],
        "/predict",
        json.dumps(EXAMPLE).encode(),
    )


def start(
    kind: str, env: dict[str, str], model_uri: str, log: Path, baseline: Path | None = None
) -> tuple[subprocess.Popen[bytes], int, str, bytes]:
    port = free_port()
    if kind == "before":
        assert baseline is not None, "--baseline COMMIT is needed for the 'before' server"
        env = {**env, "PYTHONPATH": str(baseline)}
    cmd, path, body = server_command(kind, port, model_uri)
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # bounded wait until a real prediction answers 200
        if proc.poll() is not None:
            raise RuntimeError(f"{kind} exited with {proc.returncode}; see {log}")
        try:
            status, _ = asyncio.run(one_request(port, path, body))
            if status == 200:
                if kind in {"ours", "before"}:
                    first_poll(port, deadline)
                return proc, port, path, body
        except OSError:
            pass
        time.sleep(0.25)
    stop(proc)
    raise TimeoutError(f"{kind} not answering on port {port}; see {log}")


def first_poll(port: int, deadline: float) -> None:
    """Wait for ``mlops serve``'s first registry poll. Ready from its model cache, the service
    answers at once and polls (importing mlflow: seconds of CPU) one interval later: measured from
    then, a run would charge that start-up to the requests."""
    import urllib.request

    url = f"http://127.0.0.1:{port}/ready"
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError), urllib.request.urlopen(url, timeout=5) as answer:
            if json.loads(answer.read()).get("last_poll"):
                return
        time.sleep(0.25)
    raise TimeoutError(f"the service on port {port} did not poll its registry")


def stop(proc: subprocess.Popen[bytes], env: dict[str, str] | None = None) -> int:
    """Stop a server and everything it started. With ``env`` (the server's: servers sharing a state
    folder, run after one another), also wait for its prediction-log shippers, which drain after it
    exits, and ship what they left in the spool, with the server's own code (its ``PYTHONPATH``):
    otherwise the next server measured adopts that backlog and ships it on its own core, and a run
    after a fast one pays for it. Returns the rows so shipped."""
    from mlops.serving.demo import stop_process_group

    stop_process_group(proc)
    if env is None:
        return 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    if "MLOPS_HOME" not in env:
        return 0
    cmd = [sys.executable, __file__, "--ship-spool"]
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def ship_spool() -> int:
    """Insert whatever a stopped service left in its prediction spool (settings from the
    environment); rows shipped."""
    from mlops.settings import Settings
    from mlops.stores.shipper import Shipper
    from mlops.stores.spool import Spool

    settings = Settings()
    if not settings.prediction_spool_dir.exists():
        return 0
    spool = Spool.claim(settings.prediction_spool_dir)
    shipper = Shipper(settings.prediction_log_db_url, spool)
    try:
        spool.adopt()
        rows = 0
        while shipped := shipper.ship_once():
            rows += shipped
        return rows
    finally:
        spool.release()
        shipper.store.dispose()


# ----- the load generator -----
def request_bytes(port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = await reader.readexactly(length) if length else b""
    return status, body


async def one_request(port: int, path: str, body: bytes) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request_bytes(port, path, body))
        await writer.drain()
        return await asyncio.wait_for(read_response(reader), timeout=10)
    finally:
        writer.close()


async def load(
    port: int, path: str, body: bytes, connections: int, warmup: float, seconds: float
) -> dict[str, Any]:
    request = request_bytes(port, path, body)
    latencies: list[float] = []
    errors = 0
    clock = time.perf_counter  # uvloop's loop.time() has millisecond resolution
    begin = clock()
    measure_from, measure_to = begin + warmup, begin + warmup + seconds

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while (now := clock()) < measure_to:
                writer.write(request)
                status, _ = await asyncio.wait_for(read_response(reader), timeout=10)
                done = clock()
                if now >= measure_from:
                    latencies.append(done - now)
                    errors += status != 200
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(connections)))
    latencies.sort()
    n = len(latencies)
    return {
        "requests": n,
        "errors": errors,
        "rps": n / seconds,
        "p50_ms": latencies[n // 2] * 1000,
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000,
    }


def measure(
    port: int, path: str, body: bytes, connections: int, warmup: float, seconds: float
) -> dict[str, Any]:
    """One measured run; ``client_cpu`` is the load generator's CPU share of its core (near 1.0 means
    the generator, not the server, may be the limit)."""
    cpu, wall = time.process_time(), time.perf_counter()
    try:
        import uvloop

        result = uvloop.run(load(port, path, body, connections, warmup, seconds))
    except ImportError:
        result = asyncio.run(load(port, path, body, connections, warmup, seconds))
    result["client_cpu"] = (time.process_time() - cpu) / (time.perf_counter() - wall)
    return result


# ----- the benchmark -----
def prepare(state: Path) -> tuple[dict[str, str], str]:
    """A registered, promoted iris model in a fresh state folder; the environment the servers share."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLOPS_")}
    env.update(
        MLOPS_HOME=str(state),
        MLFLOW_DISABLE_TELEMETRY="true",
        DO_NOT_TRACK="true",
        PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",  # mlflow models serve runs `uvicorn`
    )
    code = (
        "import json\n"
        "from mlops.configure import configure_libraries\nfrom mlops.settings import get_settings\n"
        "from tests.support.training import train_register_promote\n"
        "s = configure_libraries(get_settings())\n"
        "m = train_register_promote(s, 'iris')['model']\n"
        "print(json.dumps({'uri': s.mlflow_tracking_uri, 'name': m['name'], 'version': m['version']}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    info = json.loads(out.stdout.strip().splitlines()[-1])
    env.update(MLFLOW_TRACKING_URI=info["uri"], MLFLOW_REGISTRY_URI=info["uri"])
    return env, f"models:/{info['name']}/{info['version']}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--servers", nargs="+", default=list(SERVERS[:3]), choices=SERVERS)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "serving-iris.json")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "benchmarks-serving.png")
    parser.add_argument("--baseline", help="commit whose `mlops serve` the 'before' server runs")
    parser.add_argument("--floor-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--ship-spool", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_server:
        run_floor(args.floor_server)
        return
    if args.ship_spool:
        print(ship_spool())
        return
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        sys.exit("needs taskset and 2 cores (server on core 1, load generator on core 0)")
    os.sched_setaffinity(0, {0})  # the load generator's core

    work = Path(tempfile.mkdtemp(prefix="mlops-bench-serving-"))
    try:
        from baseline import export_src  # here: tests import this module as benchmarks.serving

        baseline = export_src(args.baseline, work / "before") if args.baseline else None
        env, model_uri = prepare(work / "state")
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in args.servers}
        for i in range(args.runs):
            for kind in args.servers:  # alternating, a fresh server process per run
                proc, port, path, body = start(kind, env, model_uri, work / f"{kind}.log", baseline)
                try:
                    result = measure(port, path, body, args.connections, args.warmup, args.seconds)
                finally:
                    left = stop(proc, env)
                result["left_in_spool"] = left
                runs[kind].append(result)
                print(
                    f"run {i + 1} {kind:6s} {json.dumps({k: round(v, 2) for k, v in result.items()})}",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    summary = {
        kind: {
            key: statistics.median(r[key] for r in results)
            for key in ("rps", "p50_ms", "p99_ms", "errors", "client_cpu")
        }
        for kind, results in runs.items()
    }
    ratios: dict[str, float] = {}
    if {"ours", "mlflow"} <= set(summary):
        ratios["throughput_vs_mlflow"] = summary["ours"]["rps"] / summary["mlflow"]["rps"]
    if {"ours", "floor"} <= set(summary):
        ratios["share_of_floor"] = summary["ours"]["rps"] / summary["floor"]["rps"]
    if {"ours", "before"} <= set(summary):
        ratios["throughput_vs_before"] = summary["ours"]["rps"] / summary["before"]["rps"]
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "settings": {
            k: v for k, v in vars(args).items() if k in {"runs", "seconds", "warmup", "connections"}
        },
        "model": model_uri,
        "baseline": args.baseline,
        "runs": runs,
        "median": summary,
        "ratios": ratios,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({"median": summary, "ratios": ratios}, indent=2))
    plot(summary, args.plot)


def plot(summary: dict[str, dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = {
        "mlflow": "mlflow models serve",
        "ours": "mlops serve",
        "floor": "FastAPI floor",
        "before": "mlops serve (before)",
    }
    kinds = list(summary)
    labels = [names[k] for k in kinds]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.bar(
        labels, [summary[k]["rps"] for k in kinds], color=["#999999", "#1f77b4", "#cccccc"][: len(kinds)]
    )
    left.set_ylabel("requests / s (one core)")
    left.set_yscale("log")
    left.set_title("Throughput, 16 connections")
    x = range(len(kinds))
    right.bar([i - 0.2 for i in x], [summary[k]["p50_ms"] for k in kinds], width=0.4, label="p50")
    right.bar([i + 0.2 for i in x], [summary[k]["p99_ms"] for k in kinds], width=0.4, label="p99")
    right.set_xticks(list(x), labels)
    right.set_ylabel("latency (ms)")
    right.set_yscale("log")
    right.set_title("Latency")
    right.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
