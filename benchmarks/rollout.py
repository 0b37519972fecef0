"""Rollouts on the serving path: what shadow and canary cost, and how fast a switch reaches every worker.

Two iris versions are registered in a fresh state folder: ``production`` on one, the other is the
candidate. A rollout is a record in the control database (``stores.rollouts``), written here
directly, as ``mlops rollout`` does (the ``candidate`` alias is set too).

1. ``http``: one worker (``mlops serve``) pinned to core 1, the load generator of
   benchmarks/serving.py on core 0 (``--connections`` keep-alive connections, closed loop). Three
   modes: no rollout, shadow on 100 % of the requests, canary on 10 % (routed by the request id: no
   routing key). A fresh server per run, modes interleaved run by run, each run warmed up until the
   candidate is seen working (shadow: its scorings in /metrics; canary: an answer from it); figures
   are medians over ``--runs``. Goals: shadow >= 0.75x and canary >= 0.95x the no-rollout throughput.
2. ``cpu``: CPU per ``POST /predict`` in-process (the ASGI client of benchmarks/predict_cpu.py,
   ``time.process_time()``: every thread, the shadow scorer's and the log writer's included), one
   process per case, segments alternating between them: the no-rollout path of ``--baseline``
   (main before this change) against this tree's, and this tree's shadow and canary. Less noisy than
   HTTP on a shared machine; the no-rollout ratio is what "do not slow the hot path" means.
3. ``switch``: ``mlops serve --workers 2`` with the default 1 s poll, open-loop load (``--rate``
   requests/s, a fresh connection per request: both workers answer). Each switch changes the record
   at t0: start (canary 10 %), ramp (25 %), abort. A response names the record it was answered
   under (``X-Rollout: id.generation``, absent with no rollout); the switch has reached every worker
   when no later answer shows the old state: ``reach_s`` = receive time of the last answer sent
   after t0 that still shows the old state, minus t0. Goal: <= poll interval + 0.1 s, 0 failed
   requests. ``candidate_s`` (start only): the first answer by the candidate (its load included).

    .venv/bin/python benchmarks/rollout.py [--runs 3] [--seconds 10] [--connections 16] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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
    check_cores,
    launch,
    ours_command,
    paced,
    pinned,
    prepare,
    register_another_version,
    stop,
    write_results,
)
from serving import EXAMPLE, free_port, measure

MODES = {"none": None, "shadow": ("shadow", 100.0), "canary": ("canary", 10.0)}
BODY = json.dumps(EXAMPLE).encode()
GOALS = {"shadow": 0.75, "canary": 0.95}


# ----- the rollout record -----
def start_rollout(
    url: str, env: dict[str, str], name: str, candidate: str, baseline: str, mode: str, percent: float
) -> Any:
    from mlops.stores.rollouts import RolloutStore

    set_candidate_alias(env, name, candidate)
    store = RolloutStore(url)
    try:
        return store.start(
            project="iris", model_name=name, candidate=candidate, baseline=baseline, mode=mode,  # type: ignore[arg-type]
            percent=percent, actor="benchmark",
        )  # fmt: skip
    finally:
        store.dispose()


def change_rollout(url: str, rollout: Any, *, percent: float | None = None, end: bool = False) -> Any:
    from mlops.stores.rollouts import RolloutStore

    store = RolloutStore(url)
    try:
        if end:
            return store.end(rollout.id, expected_generation=rollout.generation, state="aborted")
        return store.update(rollout.id, expected_generation=rollout.generation, percent=percent)
    finally:
        store.dispose()


def set_candidate_alias(env: dict[str, str], name: str, version: str) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"], registry_uri=env["MLFLOW_REGISTRY_URI"])
    client.set_registered_model_alias(name, "candidate", version)


# ----- raw HTTP with headers -----
async def request(port: int, path: str = "/predict", body: bytes = BODY) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection: status, headers (lower-case names), body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        writer.write(head.encode() + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    header, _, content = raw.partition(b"\r\n\r\n")
    lines = header.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return int(lines[0].split(" ", 2)[1]), headers, content


async def metric_total(port: int, name: str) -> float:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
    text = (await asyncio.wait_for(reader.read(), 10)).decode()
    writer.close()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


async def wait_working(port: int, mode: str, candidate: str, timeout: float = 60.0) -> None:
    """Until the server answers, and in a rollout until its candidate is seen working."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, headers, _ = await request(port)
            if status == 200:
                if mode == "none":
                    return
                if mode == "canary" and headers.get("x-model-version") == candidate:
                    return
                if mode == "shadow" and await metric_total(port, "mlops_shadow_agreement_total") > 0:
                    return
        except (OSError, TimeoutError, ValueError, IndexError):
            pass
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{mode}: candidate not working on port {port}")


# ----- 1. throughput and p99 at 16 connections, one worker -----
def http_runs(
    args: argparse.Namespace, env: dict[str, str], work: Path, versions: tuple[str, str], name: str
) -> dict[str, Any]:
    production, candidate = versions
    url = f"sqlite:///{work / 'state' / 'audit.db'}"
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    for i in range(args.runs):
        for mode, rollout_of in MODES.items():  # interleaved, a fresh server per run
            rollout = None
            if rollout_of is not None:
                rollout = start_rollout(url, env, name, candidate, production, *rollout_of)
            port = free_port()
            proc = launch(pinned(ours_command(port)), env, work / f"http-{mode}.log")
            try:
                asyncio.run(wait_working(port, mode, candidate))
                result = measure(port, "/predict", BODY, args.connections, args.warmup, args.seconds)
                if mode == "shadow":
                    result["shadow_scored"] = asyncio.run(
                        metric_total(port, "mlops_candidate_scorings_total")
                    )
            finally:
                stop(proc)
                if rollout is not None:
                    change_rollout(url, rollout, end=True)
            runs[mode].append(result)
            print(
                f"http run {i + 1} {mode:6s} {json.dumps({k: round(v, 2) for k, v in result.items()})}",
                flush=True,
            )
    median = {
        mode: {k: statistics.median(r[k] for r in rs) for k in ("rps", "p50_ms", "p99_ms", "errors")}
        for mode, rs in runs.items()
    }
    # the ratio of each run to the no-rollout run beside it, then the median: the machine's drift cancels
    ratios = {
        mode: statistics.median(r["rps"] / n["rps"] for r, n in zip(runs[mode], runs["none"], strict=True))
        for mode in GOALS
    }
    of_medians = {mode: median[mode]["rps"] / median["none"]["rps"] for mode in GOALS}
    return {
        "runs": runs,
        "median": median,
        "throughput_ratio": ratios,
        "throughput_ratio_of_medians": of_medians,
        "goals": GOALS,
    }


# ----- 2. CPU per request, in-process -----
async def cpu_child(warmup: int, mode: str) -> None:
    from mlops.serving.app import create_app
    from mlops.settings import get_settings
    from predict_cpu import JSON, call, lifespan

    app = create_app(get_settings().model_copy(update={"poll_interval_s": 3600.0}))
    task, inbox = await lifespan(app)
    follower = getattr(app.state, "rollout", None)
    deadline = time.monotonic() + 60
    while mode != "none" and not (follower and follower.view and follower.view.candidate):
        assert time.monotonic() < deadline, "candidate not loaded"
        await asyncio.sleep(0.05)
    for _ in range(warmup):
        await call(app, "/predict", BODY, JSON)
        await asyncio.sleep(0)  # the log writer and the shadow scorer run, as under a server
    print("ready", flush=True)
    while (line := sys.stdin.readline().strip()) != "quit":
        n = int(line)
        cpu = time.process_time()
        for _ in range(n):
            status, _, _ = await call(app, "/predict", BODY, JSON)
            assert status == 200, status
            await asyncio.sleep(0)
        while follower is not None and follower.shadow.queue:  # the shadow work of this segment too
            await asyncio.sleep(0.001)
        print((time.process_time() - cpu) / n * 1e6, flush=True)
    await inbox.put({"type": "lifespan.shutdown"})
    await task


def cpu_runs(
    args: argparse.Namespace, env: dict[str, str], work: Path, versions: tuple[str, str], name: str
) -> dict[str, Any]:
    from baseline import export_src

    production, candidate = versions
    cases: dict[str, tuple[Path, str]] = {
        "main_none": (export_src(args.baseline, work / "baseline"), "none"),
        "none": (ROOT / "src", "none"),
        "shadow": (ROOT / "src", "shadow"),
        "canary": (ROOT / "src", "canary"),
    }
    runs: dict[str, list[float]] = {case: [] for case in cases}
    for _ in range(args.runs):
        procs = {}
        for case, (src, mode) in cases.items():
            url = f"sqlite:///{work / f'control-{case}.db'}"
            if mode != "none":
                rollout = start_rollout(url, env, name, candidate, production, *MODES[mode])  # type: ignore[misc]
            else:
                rollout = None
            child_env = {**env, "PYTHONPATH": str(src), "MLOPS_AUDIT_DB_URL": url}
            cmd = [sys.executable, __file__, "--cpu-child", mode, "--cpu-warmup", str(args.cpu_requests // 5)]
            procs[case] = (
                subprocess.Popen(
                    pinned(cmd),
                    env=child_env,
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                ),
                url,
                rollout,
            )
        segments: dict[str, list[float]] = {case: [] for case in cases}
        try:
            for case, (proc, _, _) in procs.items():
                assert proc.stdout is not None and proc.stdout.readline().strip() == "ready", case
            for _ in range(10):
                for case, (proc, _, _) in procs.items():
                    assert proc.stdin is not None and proc.stdout is not None
                    proc.stdin.write(f"{args.cpu_requests // 10}\n")
                    proc.stdin.flush()
                    segments[case].append(float(proc.stdout.readline()))
            for proc, _, _ in procs.values():
                assert proc.stdin is not None
                proc.stdin.write("quit\n")
                proc.stdin.flush()
                proc.wait(60)
        finally:
            for proc, url, rollout in procs.values():
                if proc.poll() is None:
                    proc.kill()
                if rollout is not None:
                    change_rollout(url, rollout, end=True)
        for case, values in segments.items():
            runs[case].append(statistics.median(values))
        print(f"cpu run {json.dumps({c: round(v[-1], 1) for c, v in runs.items()})}", flush=True)
    median = {case: statistics.median(v) for case, v in runs.items()}
    return {
        "cpu_us_per_request": median,
        "runs": runs,
        "ratio_vs_main_none": {case: median[case] / median["main_none"] for case in cases},
        "baseline": args.baseline,
    }


# ----- 3. a switch reaching every worker -----
async def switch_run(
    args: argparse.Namespace, env: dict[str, str], work: Path, versions: tuple[str, str], name: str
) -> dict[str, Any]:
    production, candidate = versions
    url = f"sqlite:///{work / 'state' / 'audit.db'}"
    port = free_port()
    proc = launch(pinned(ours_command(port, workers=2)), env, work / "switch.log")
    samples: list[
        tuple[float, float, int, str | None, str | None]
    ] = []  # sent, received, status, tag, version
    stop_event = asyncio.Event()

    async def one() -> None:
        sent = time.perf_counter()
        try:
            status, headers, _ = await asyncio.wait_for(request(port), 5)
        except (OSError, TimeoutError, ValueError, IndexError):
            samples.append((sent, time.perf_counter(), 0, None, None))
            return
        samples.append(
            (sent, time.perf_counter(), status, headers.get("x-rollout"), headers.get("x-model-version"))
        )

    async def load() -> None:
        await paced(one, args.rate, stop_event)

    switches: list[dict[str, Any]] = []
    try:
        await wait_working(port, "none", candidate)
        loader = asyncio.create_task(load())
        await asyncio.sleep(2.0)
        rollout = None
        old_tag: str | None = None
        for step in ("start", "ramp", "abort"):
            t0 = time.perf_counter()
            if step == "start":
                rollout = await asyncio.to_thread(
                    start_rollout, url, env, name, candidate, production, "canary", 10.0
                )
            elif step == "ramp":
                rollout = await asyncio.to_thread(change_rollout, url, rollout, percent=25.0)
            else:
                await asyncio.to_thread(change_rollout, url, rollout, end=True)
            written = time.perf_counter()
            new_tag = None if step == "abort" else f"{rollout.id}.{rollout.generation}"
            await asyncio.sleep(args.observe)
            deadline = time.perf_counter() + 60.0  # start: until the candidate answers (its first load)
            while step == "start" and time.perf_counter() < deadline:
                if any(s[0] >= t0 and s[4] == candidate for s in samples):
                    break
                await asyncio.sleep(0.1)
            after = [s for s in samples if s[0] >= t0 and s[2] == 200]
            old = [s[1] for s in after if s[3] == old_tag]
            new = [s[1] for s in after if s[3] == new_tag]
            if not new:
                raise RuntimeError(f"{step}: no answer showed the new state; see {work / 'switch.log'}")
            result = {
                "step": step,
                "record_write_s": written - t0,
                "reach_s": max(max(old, default=t0) - t0, 0.0),
                "first_new_s": min(new) - t0,
                "old_answers_after": len(old),
            }
            if step == "start":
                by_candidate = [s[1] for s in after if s[4] == candidate]
                result["candidate_s"] = min(by_candidate) - t0 if by_candidate else None
            switches.append(result)
            shown = {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}
            print(f"switch {json.dumps(shown)}", flush=True)
            old_tag = new_tag
        stop_event.set()
        await loader
    finally:
        stop_event.set()
        await asyncio.to_thread(stop, proc)
    return {"switches": switches, "requests": len(samples), "failed": sum(s[2] != 200 for s in samples)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rate", type=float, default=100.0, help="requests/s during the switches")
    parser.add_argument("--observe", type=float, default=3.0, help="seconds of load after each switch")
    parser.add_argument("--cpu-requests", type=int, default=20000)
    parser.add_argument(
        "--baseline", default="main", help="commit whose no-rollout path the cpu part compares"
    )
    parser.add_argument(
        "--parts", nargs="+", default=["http", "cpu", "switch"], choices=["http", "cpu", "switch"]
    )
    parser.add_argument("--quick", action="store_true", help="1 short run of each part (for checking)")
    parser.add_argument("--out", default="rollout.json")
    parser.add_argument("--cpu-child", help=argparse.SUPPRESS)
    parser.add_argument("--cpu-warmup", type=int, default=2000, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cpu_child:
        asyncio.run(cpu_child(args.cpu_warmup, args.cpu_child))
        return
    if args.quick:
        args.runs, args.seconds, args.warmup, args.cpu_requests, args.observe = 1, 3.0, 1.0, 4000, 2.0
    check_cores()
    args.baseline = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", args.baseline],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()

    work = Path(tempfile.mkdtemp(prefix="mlops-bench-rollout-"))
    report: dict[str, Any] = {}
    try:
        env, model_uri = prepare(work / "state")
        name, production = model_uri.removeprefix("models:/").split("/")
        candidate = register_another_version(env, production)
        versions = (production, candidate)
        if "http" in args.parts:
            report["http"] = http_runs(args, env, work, versions, name)
        if "cpu" in args.parts:
            report["cpu"] = cpu_runs(args, env, work, versions, name)
        if "switch" in args.parts:
            report["switch"] = asyncio.run(switch_run(args, env, work, versions, name))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report = {
        "settings": {
            k: getattr(args, k)
            for k in ("runs", "seconds", "warmup", "connections", "rate", "observe", "cpu_requests", "quick")
        },
        "poll_interval_s": 1.0,
        "versions": {"production": production, "candidate": candidate},
        **report,
    }
    path = write_results(args.out, report)
    summary = {
        "http_throughput_ratio": report.get("http", {}).get("throughput_ratio"),
        "http_p99_ms": {m: v["p99_ms"] for m, v in report.get("http", {}).get("median", {}).items()},
        "cpu_ratio_vs_main": report.get("cpu", {}).get("ratio_vs_main_none"),
        "switch": report.get("switch"),
    }
    print(json.dumps(summary, indent=2, default=lambda v: round(v, 3)))
    print(f"raw results: {path}")


if __name__ == "__main__":
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    main()
