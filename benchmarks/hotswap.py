"""Hot-swap latency under load: `mlops serve` (2 workers) against restarting `mlflow models serve`.

Two iris versions are registered in a fresh state folder; ``production`` points at one of them.
Each run starts a fresh server pinned to core 1, puts it under steady open-loop load from core 0
(``--rate`` requests per second, a new connection per request so that every worker gets requests),
then moves the ``production`` alias to the other version at t0 (the start of the registry call):

- ``ours``: ``mlops serve --workers 2`` with ``MLOPS_POLL_INTERVAL_S=--poll-interval``. Every worker
  polls the alias, loads and smoke-tests the new version off the request path and swaps. The swap
  latency is the last instant a response still named the old version (its receive time) minus t0:
  after it, every answer came from the new model. The load goes on for ``--observe`` seconds after
  t0 to make sure no old answer follows. Failed requests are counted over the whole run. A second
  witness: ``/metrics`` polled every 50 ms; ``mlops_model_info`` (livemax over the workers) keeps
  the old version at 1 until the last worker has swapped.
- ``mlflow``: ``mlflow models serve -m models:/<name>@production`` has no hot swap: after the alias
  move it is restarted (SIGTERM to its process group, then a new process on the same port). Its
  swap latency is the receive time of the first 200 on a request sent after the old process exited,
  minus t0; requests fail meanwhile and are counted.

Runs alternate between the servers (and between the two versions); figures are medians over
``--runs``. Afterwards one fresh process measures what a swap costs without the poll wait
(``ModelManager.check()`` after an alias move: resolve + load + smoke test + swap, no load on it),
and ``runtime.load`` alone.

    .venv/bin/python benchmarks/hotswap.py [--runs 3] [--poll-interval 1.0] [--rate 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    ROOT,
    Sample,
    check_cores,
    launch,
    mlflow_command,
    open_loop,
    ours_command,
    pinned,
    prepare,
    register_another_version,
    stop,
    timeline,
    write_results,
)
from serving import EXAMPLE, free_port, one_request

SERVERS = ("ours", "mlflow")
BODIES = {
    "ours": ("/predict", json.dumps(EXAMPLE).encode()),
    "mlflow": ("/invocations", json.dumps({"dataframe_records": [EXAMPLE]}).encode()),
}


async def wait_answering(
    proc: subprocess.Popen[bytes], port: int, kind: str, version: str, timeout: float = 120
) -> None:
    """Until the server answers; ``ours`` until 20 answers in a row (fresh connections, so both
    workers) name ``version``, the alias' target: ready from its model cache, a worker first serves
    the version it served last and swaps on its first poll, which imports mlflow (seconds of CPU on
    the pinned core), and a move measured before then would time that start-up, not a swap."""
    path, body = BODIES[kind]
    deadline = time.monotonic() + timeout
    in_a_row = 0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{kind} exited with {proc.returncode}")
        try:
            status, answer = await one_request(port, path, body)
        except OSError:
            status, answer = 0, b""
        if status == 200 and kind != "ours":
            return
        if status == 200 and json.loads(answer).get("model_version") == version:
            in_a_row += 1
            if in_a_row >= 20:
                return
            continue
        in_a_row = 0
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{kind} not answering with version {version} on port {port}")


async def poll_model_info(
    port: int, old: str, stop_event: asyncio.Event, seen: list[tuple[float, bool]]
) -> None:
    """Every 50 ms: is the old version still served by some worker, according to /metrics?"""
    request = f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode()
    marker = f'version="{old}"'
    while not stop_event.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            text = (await asyncio.wait_for(reader.read(), 5)).decode()
            writer.close()
            old_live = any(
                line.startswith("mlops_model_info{") and marker in line and not line.endswith(" 0.0")
                for line in text.splitlines()
            )
            seen.append((time.perf_counter(), old_live))
        except (OSError, TimeoutError):
            pass
        await asyncio.sleep(0.05)


async def one_run(
    kind: str,
    env: dict[str, str],
    args: argparse.Namespace,
    client: Any,
    name: str,
    old: str,
    new: str,
    log: Path,
) -> dict[str, Any]:
    port = free_port()
    path, body = BODIES[kind]
    if kind == "ours":
        cmd = ours_command(port, workers=2)
        env = {**env, "MLOPS_POLL_INTERVAL_S": str(args.poll_interval)}
    else:
        cmd = mlflow_command(port, f"models:/{name}@production")
    proc = launch(pinned(cmd), env, log)
    samples: list[Sample] = []
    stop_load = asyncio.Event()
    witness: list[tuple[float, bool]] = []
    try:
        await wait_answering(proc, port, kind, old)
        load = asyncio.create_task(open_loop(port, path, body, args.rate, stop_load, samples))
        poller = (
            asyncio.create_task(poll_model_info(port, old, stop_load, witness)) if kind == "ours" else None
        )
        await asyncio.sleep(args.warmup)
        t0 = time.perf_counter()
        await asyncio.to_thread(client.set_registered_model_alias, name, "production", new)
        moved = time.perf_counter()
        exited = t0
        if kind == "mlflow":  # no hot swap: restart on the alias' new target
            await asyncio.to_thread(stop, proc)
            exited = time.perf_counter()
            proc = launch(pinned(cmd), env, log)
            deadline = exited + 120
            while time.perf_counter() < deadline and not any(
                s.status == 200 and s.sent > exited for s in samples
            ):
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # some answers from the new process, then stop
        else:
            await asyncio.sleep(args.observe)
        stop_load.set()
        await load
        if poller is not None:
            await poller
    finally:
        await asyncio.to_thread(stop, proc)

    during = [s for s in samples if s.sent >= t0]
    result: dict[str, Any] = {
        "from": old,
        "to": new,
        "requests": len(samples),
        "failed": sum(s.status != 200 for s in samples),
        "failed_after_move": sum(s.status != 200 for s in during),
        "registry_write_s": moved - t0,
    }
    if kind == "ours":
        old_answers = [s.received for s in samples if s.version == old]
        new_answers = [s.received for s in samples if s.version == new]
        if not new_answers:
            raise RuntimeError(f"no answer from version {new} within {args.observe} s; see {log}")
        last_old = max(old_answers)
        if any(s.version not in (old, new) for s in samples if s.status == 200):
            raise RuntimeError("an answer named a version that is neither the old nor the new one")
        result["swap_s"] = max(last_old - t0, 0.0)
        result["first_new_s"] = min(new_answers) - t0
        last_live = max((t for t, old_live in witness if old_live), default=t0)
        after = [t for t, old_live in witness if t > max(last_live, t0) and not old_live]
        result["metrics_converged_s"] = min(after) - t0 if after else None
        result["old_answers_after_move"] = sum(s.version == old for s in during)
    else:
        first = min(s.received for s in samples if s.status == 200 and s.sent > exited)
        result["swap_s"] = first - t0
        result["stop_old_s"] = exited - moved
    result["timeline"] = timeline(samples, t0, -1.0, result["swap_s"] + 1.0)  # for the plot
    return result


def swap_cost(env: dict[str, str], versions: tuple[str, str], repeats: int) -> dict[str, Any]:
    """In a fresh process pinned to the server core: ``ModelManager.check()`` after each alias move
    (resolve, load, smoke test, swap, without the poll wait and without load), and ``runtime.load``."""
    code = f"""
import asyncio, json, statistics, time
from mlops.configure import configure_libraries
from mlops.settings import get_settings
from mlops.serving.model_manager import ModelManager
from mlops.registry import Registry
from mlops import runtime
s = configure_libraries(get_settings())
m, r = ModelManager(s, "iris", "production"), Registry(s, "iris")
versions, checks, loads = {list(versions)!r}, [], []
async def main():
    await m.check()  # the first load pays the imports
    for i in range({repeats}):
        target = versions[(i + 1) % 2]
        r.client.set_registered_model_alias(r.name, "production", target)
        t = time.perf_counter(); await m.check(); checks.append(time.perf_counter() - t)
        assert m.current.version == target, m.state()
        t = time.perf_counter(); runtime.load(s, "iris", target, threads=1)
        loads.append(time.perf_counter() - t)
    r.client.set_registered_model_alias(r.name, "production", versions[0])
asyncio.run(main())
print(json.dumps({{"check_s": checks, "load_s": loads, "check_median_s": statistics.median(checks),
                  "load_median_s": statistics.median(loads)}}))
"""
    out = subprocess.run(
        pinned([sys.executable, "-c", code]), env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=1.0,
        help="MLOPS_POLL_INTERVAL_S of ours (s); 1.0 is the default",
    )
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second during a run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of load before the alias move")
    parser.add_argument("--observe", type=float, default=8.0, help="seconds of load after the move (ours)")
    parser.add_argument("--servers", nargs="+", default=list(SERVERS), choices=SERVERS)
    parser.add_argument("--out", default="hotswap-iris.json")
    args = parser.parse_args()
    check_cores()

    work = Path(tempfile.mkdtemp(prefix="mlops-bench-hotswap-"))
    try:
        env, model_uri = prepare(work / "state")
        name, first = model_uri.removeprefix("models:/").split("/")
        second = register_another_version(env, first)
        from mlflow import MlflowClient

        client = MlflowClient(
            tracking_uri=env["MLFLOW_TRACKING_URI"], registry_uri=env["MLFLOW_REGISTRY_URI"]
        )
        runs: dict[str, list[dict[str, Any]]] = {k: [] for k in args.servers}
        current, other = first, second
        for i in range(args.runs):
            for kind in args.servers:  # alternating; each run moves the alias to the other version
                result = asyncio.run(
                    one_run(kind, env, args, client, name, current, other, work / f"{kind}.log")
                )
                current, other = other, current
                runs[kind].append(result)
                brief = {k: v for k, v in result.items() if k != "timeline"}
                print(f"run {i + 1} {kind:6s} {json.dumps(brief, default=lambda v: round(v, 3))}", flush=True)
        client.set_registered_model_alias(name, "production", first)
        cost = swap_cost(env, (first, second), repeats=6) if "ours" in args.servers else {}
    finally:
        shutil.rmtree(work, ignore_errors=True)

    keys = ("swap_s", "failed", "failed_after_move", "requests", "first_new_s", "metrics_converged_s")
    median = {
        kind: {
            key: statistics.median(r[key] for r in results)
            for key in keys
            if all(r.get(key) is not None for r in results)
        }
        for kind, results in runs.items()
    }
    report = {
        "settings": {k: getattr(args, k) for k in ("runs", "poll_interval", "rate", "warmup", "observe")},
        "model": name,
        "versions": [first, second],
        "runs": runs,
        "median": median,
        "swap_cost": cost,
    }
    path = write_results(args.out, report, indent=None)  # one line: the timelines are long
    print(
        json.dumps(
            {"median": median, "swap_cost": {k: v for k, v in cost.items() if "median" in k}}, indent=2
        )
    )
    if "ours" in median:
        print(
            f"ours: swap {median['ours']['swap_s']:.2f} s with a {args.poll_interval} s poll interval "
            f"(check = resolve+load+smoke test+swap: {cost.get('check_median_s', float('nan')):.2f} s), "
            f"{median['ours']['failed']:.0f} failed requests"
        )
    if "mlflow" in median:
        print(
            f"mlflow models serve restarted: {median['mlflow']['swap_s']:.2f} s without the new model, "
            f"{median['mlflow']['failed']:.0f} failed requests at {args.rate:.0f} req/s"
        )
    print(f"raw results: {path}")


if __name__ == "__main__":
    main()
