"""Cold start to ready: `mlops serve` against `mlflow models serve`, fresh processes, same model.

One iris model (50-tree RandomForest, ONNX parity passed) is registered and promoted in a fresh state
folder. Each run starts a fresh server process pinned to core 1 while this script, pinned to core 0,
probes it every 20 ms on new connections:

- ``ours``: ``mlops serve --project iris`` (one worker) with its local model cache off
  (``MLOPS_MODEL_CACHE=false``): the model comes from the registry. Time from ``Popen`` to the first
  200 on ``/ready`` (model loaded and smoke-tested), then to the first successful ``/predict``;
- ``cache``: the same command with the cache on (the default): ready from the version the previous
  run served (``serving.model_cache``; the untimed warm-up run fills it), no mlflow import before
  ready; the first registry poll runs after ready, in the background;
- ``mlflow``: ``mlflow models serve -m models:/<name>/<version> --env-manager local``: time to the
  first 200 on ``/ping``, then to the first successful ``/invocations``.

Servers alternate; one untimed run of each first warms the page cache; figures are medians over
``--runs``, and ``ratio`` is each server's median time to ready over ``mlflow``'s. ``--profile`` then
starts ``cache`` twice more (its first registry poll, which imports mlflow, held back until after
the profile ends), under ``python -X importtime`` and under
``py-spy record``, and prints where the time to ready goes: import time per third-party package (the
package the project imported, with everything it pulled in on the way) and the remaining CPU time by
phase (MLflow store set-up, alias resolution, model download, ONNX session, smoke test, DB, ...).

    .venv/bin/python benchmarks/coldstart.py [--runs 5] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    BIN,
    check_cores,
    launch,
    mlflow_command,
    ours_command,
    pinned,
    prepare,
    stop,
    write_results,
)
from serving import EXAMPLE, free_port, one_request

SERVERS = ("ours", "cache", "mlflow")
PROBES = {  # kind: (readiness path, prediction path, prediction body)
    "ours": ("/ready", "/predict", json.dumps(EXAMPLE).encode()),
    "cache": ("/ready", "/predict", json.dumps(EXAMPLE).encode()),
    "mlflow": ("/ping", "/invocations", json.dumps({"dataframe_records": [EXAMPLE]}).encode()),
}
PROBE_EVERY = 0.02


async def status_of(port: int, method: str, path: str, body: bytes = b"") -> int:
    if method == "POST":
        return (await one_request(port, path, body))[0]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n"), 10)
        return int(head.split(b" ", 2)[1])
    finally:
        writer.close()


async def first_200(
    proc: subprocess.Popen[bytes], port: int, method: str, path: str, body: bytes, timeout: float
) -> float:
    """``perf_counter()`` of the first answer 200 on ``path``."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if await status_of(port, method, path, body) == 200:
                return time.perf_counter()
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            pass
        await asyncio.sleep(PROBE_EVERY)
    raise TimeoutError(f"no 200 on {path} within {timeout} s")


def cold_start(
    cmd: list[str], kind: str, env: dict[str, str], port: int, log: Path, timeout: float = 120
) -> dict[str, float]:
    ready_path, predict_path, body = PROBES[kind]
    begin = time.perf_counter()
    proc = launch(cmd, env, log)
    try:
        ready = asyncio.run(first_200(proc, port, "GET", ready_path, b"", timeout))
        predicted = asyncio.run(first_200(proc, port, "POST", predict_path, body, timeout))
    finally:
        stop(proc)
    return {"ready_s": ready - begin, "first_prediction_s": predicted - begin}


def command(kind: str, port: int, model_uri: str) -> list[str]:
    return pinned(mlflow_command(port, model_uri) if kind == "mlflow" else ours_command(port))


def environment(kind: str, env: dict[str, str]) -> dict[str, str]:
    """``ours`` loads from the registry (cache off); ``cache`` and ``mlflow`` run with the defaults."""
    return {**env, "MLOPS_MODEL_CACHE": "false"} if kind == "ours" else env


# ----- profiles of ours: import time per package, then CPU time by phase -----
def profiled_start(cmd: list[str], env: dict[str, str], port: int, log: Path) -> None:
    """Start ``cmd`` (a wrapper around the server), wait for /ready, stop it. SIGINT first: py-spy
    writes its profile on SIGINT; the server's own SIGINT handler shuts it down gracefully."""
    proc = launch(cmd, env, log)
    try:
        asyncio.run(first_200(proc, port, "GET", "/ready", b"", 180))
        os.kill(proc.pid, signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        stop(proc)


PHASES = {  # innermost frame of ours in a non-import sample -> what it is doing
    "Registry.client": "MLflow client and SQL store set-up",
    "Registry.alias_version": "resolve the alias",
    "Registry.version": "read the version's metadata",
    "load": "download the model from the registry",
    "OnnxScorer.__init__": "create the ONNX session",
    "LoadedModel.predict_rows": "smoke test",
    "OnnxScorer.proba_rows": "smoke test",
    "latest_drift": "drift gauges (prediction DB)",
    "engine": "drift gauges (prediction DB)",
    "serve": "start uvicorn",
    "main": "CLI",
    "RequestMiddleware.__call__": "answer the readiness probes",
    "request": "answer the readiness probes",
}


def owner(module: str, importers: list[str]) -> str:
    """The package the service imported that brought ``module`` in: the first non-``mlops`` entry
    of the importer chain (``mlflow`` for the pandas that mlflow pulls in), else ``mlops`` itself."""
    for name in [*importers, module]:
        if name.split(".")[0] != "mlops":
            return name.split(".")[0]
    return "mlops"


def import_profile(stderr: str) -> dict[str, float]:
    """Seconds of ``-X importtime`` self time, by the package the service imported."""
    lines = [line for line in stderr.splitlines() if line.startswith("import time:") and "[us]" not in line]
    by_owner: collections.Counter[str] = collections.Counter()
    chain: list[str] = []
    for line in reversed(lines):  # importtime prints a module after its children: parents first when reversed
        self_us, _cumulative, name = line.removeprefix("import time:").split("|")
        depth = (len(name) - len(name.lstrip())) // 2
        chain = [*chain[:depth], name.strip()]
        by_owner[owner(chain[-1], chain[:-1])] += int(self_us)
    return {k: v / 1e6 for k, v in by_owner.most_common()}


def cpu_profile(raw: str, rate: int) -> dict[str, float]:
    """py-spy raw stacks -> CPU seconds: ``import <package>`` or the phase of ours that ran."""
    seconds: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [(f.split(" (")[0], f.partition(" (")[2].rsplit(":", 1)[0]) for f in stack.split(";")]
        names = [name for name, _ in frames]
        if "_find_and_load" in names:
            start = names.index("_find_and_load")
            modules = [path for name, path in frames[start:] if name == "<module>"]
            packages = [path.split("/")[0].removesuffix(".py") for path in modules]
            what = "import " + next((p for p in packages if p != "mlops"), "mlops")
        else:
            ours = [name for name, path in frames if path.startswith("mlops/")]
            what = PHASES.get(ours[-1], ours[-1]) if ours else "other (interpreter, uvicorn)"
        seconds[what] += int(count) / rate
    return dict(seconds.most_common())


def profile_ours(env: dict[str, str], work: Path) -> dict[str, Any]:
    port = free_port()
    serve = ["-m", "mlops.cli", "serve", "--project", "iris", "--port", str(port)]
    log = work / "importtime.log"
    begin = time.perf_counter()
    profiled_start(pinned([sys.executable, "-X", "importtime", *serve]), env, port, log)
    importtime_ready = time.perf_counter() - begin
    imports = import_profile(log.read_text(errors="replace"))

    port, rate, raw = free_port(), 100, work / "py-spy.txt"
    serve[-1] = str(port)
    spy = [str(BIN / "py-spy"), "record", "--format", "raw", "--rate", str(rate), "-o", str(raw), "--"]
    begin = time.perf_counter()
    profiled_start(pinned([*spy, sys.executable, *serve]), env, port, work / "py-spy.log")
    spy_ready = time.perf_counter() - begin
    return {
        "importtime": {
            "ready_s": importtime_ready,
            "total_s": sum(imports.values()),
            "by_package_s": imports,
        },
        "py_spy": {"ready_s": spy_ready, "rate_hz": rate, "cpu_s": cpu_profile(raw.read_text(), rate)},
    }


def print_profile(profile: dict[str, Any]) -> None:
    imp, spy = profile["importtime"], profile["py_spy"]
    print(f"\n-X importtime: ready after {imp['ready_s']:.2f} s, of which imports {imp['total_s']:.2f} s:")
    for package, seconds in list(imp["by_package_s"].items())[:12]:
        print(f"  {seconds:6.2f} s  {package}")
    cpu = spy["cpu_s"]
    print(
        f"py-spy ({spy['rate_hz']} Hz): ready after {spy['ready_s']:.2f} s, {sum(cpu.values()):.2f} s on CPU:"
    )
    for what, seconds in list(cpu.items())[:16]:  # py-spy slows the process: read the shares
        print(f"  {seconds:6.2f} s  {seconds / sum(cpu.values()):4.0%}  {what}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--servers", nargs="+", default=list(SERVERS), choices=SERVERS)
    parser.add_argument("--profile", action="store_true", help="then profile ours (importtime, py-spy)")
    parser.add_argument("--out", default="coldstart-iris.json")
    args = parser.parse_args()
    check_cores()

    work = Path(tempfile.mkdtemp(prefix="mlops-bench-coldstart-"))
    try:
        env, model_uri = prepare(work / "state")
        runs: dict[str, list[dict[str, float]]] = {k: [] for k in args.servers}
        for i in range(args.runs + 1):
            for kind in args.servers:  # alternating, a fresh process per run; run 0 warms the caches
                port = free_port()
                cmd = command(kind, port, model_uri)
                result = cold_start(cmd, kind, environment(kind, env), port, work / f"{kind}.log")
                if i:
                    runs[kind].append(result)
                label = f"run {i}" if i else "warm-up"
                print(f"{label:7s} {kind:6s} {json.dumps({k: round(v, 3) for k, v in result.items()})}")
        profile = profile_ours({**env, "MLOPS_POLL_INTERVAL_S": "60"}, work) if args.profile else {}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    median = {
        kind: {key: statistics.median(r[key] for r in results) for key in ("ready_s", "first_prediction_s")}
        for kind, results in runs.items()
    }
    ratio = (
        {k: median[k]["ready_s"] / median["mlflow"]["ready_s"] for k in median if k != "mlflow"}
        if "mlflow" in median
        else {}
    )
    report = {
        "settings": {"runs": args.runs},
        "model": model_uri,
        "runs": runs,
        "median": median,
        "ratio_ready_vs_mlflow": ratio,
    }
    if profile:
        report["profile"] = profile
    path = write_results(args.out, report)
    print(json.dumps({"median": median, "ratio_ready_vs_mlflow": ratio}, indent=2))
    if profile:
        print_profile(profile)
    print(f"raw results: {path}")


if __name__ == "__main__":
    main()
