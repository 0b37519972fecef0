"""What tracing costs the service: `mlops serve` with tracing off, on (exporting over OTLP/HTTP), and
as it was before tracing existed, under the serving benchmark's load.

Three servers, each a fresh ``mlops serve`` process pinned to core 1 per run, alternating (each run
starting with the next kind), with the serving benchmark's closed-loop load generator
(benchmarks/serving.py: ``prepare``, ``start``, ``measure``; 16 keep-alive connections, single-row
iris requests) on core 0:

- ``before``: the service at ``--baseline`` (default ``BEFORE_TRACING``, the last commit before it), its
  ``src/`` exported with ``git archive`` and put first on ``PYTHONPATH`` (benchmarks/baseline.py);
  each kind has its own state folder (prediction log, spool, model cache), the registry is shared;
- ``off``: this tree, ``OTEL_TRACES_EXPORTER`` unset (the default);
- ``on``: this tree, ``OTEL_TRACES_EXPORTER=otlp`` to a collector of this script's on core 0 that
  decodes every export request and counts its spans (so the export really happens: protobuf
  encoding and HTTP in the batch processor's thread, inside the server's core budget).

Each run also reads the server's CPU time (``/proc/PID/stat``) over the measured requests:
``cpu_us_per_request``, which moves far less than throughput when other work shares the cores.

Then, in process (``--inprocess-runs``): the app called straight through its ASGI interface in a
child pinned to core 1, ``--inprocess-requests`` single-row predictions, the child's CPU time per
request (every thread: the batch processor's export included), for ``before``, ``off``, ``on`` and
``on`` with a 10 % parent-based sampler; the same collector receives the exports. Medians of runs.

    .venv/bin/python benchmarks/tracing.py [--runs 5] [--seconds 8] [--baseline COMMIT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from serving import ROOT, measure, prepare, start, stop

KINDS = ("before", "off", "on")
SETTINGS = {"runs", "seconds", "warmup", "connections"}
RESULTS = ROOT / "benchmarks" / "results" / "tracing.json"
BEFORE_TRACING = "607ed04"  # main just before tracing was added (issue 14)


# ----- the collector: decodes and counts what the exporter sends -----
def run_collector(port_file: Path, counts_file: Path) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    counts = {"requests": 0, "spans": 0, "bytes": 0}

    class Receive(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            counts["requests"] += 1
            counts["bytes"] += len(body)
            counts["spans"] += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receive)

    def finish(*_: Any) -> None:
        counts_file.write_text(json.dumps(counts))
        os._exit(0)

    signal.signal(signal.SIGTERM, finish)
    port_file.write_text(str(server.server_address[1]))
    server.serve_forever()


def start_collector(work: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    port_file, counts_file = work / "collector.port", work / "collector.json"
    port_file.unlink(missing_ok=True)
    cmd = ["taskset", "-c", "0", sys.executable, __file__, "--collector", str(port_file), str(counts_file)]
    proc = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True)
    deadline = time.monotonic() + 30
    while not port_file.exists() or not port_file.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("the collector did not start")
        time.sleep(0.05)
    return proc, int(port_file.read_text()), counts_file


def stop_collector(proc: subprocess.Popen[bytes], counts_file: Path) -> dict[str, int]:
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=10)
    counts: dict[str, int] = json.loads(counts_file.read_text())
    return counts


# ----- one measured run: throughput, latency and the server's CPU per request -----
def cpu_seconds(pid: int) -> float:
    """User + system CPU of process ``pid`` (``taskset`` execs the server: the same pid), its
    threads included (the batch span processor's export thread); not its prediction-log shipper."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured(pid: int, port: int, path: str, body: bytes, args: argparse.Namespace) -> dict[str, Any]:
    """A warm-up, then the measured load; ``cpu_us_per_request``: the server's CPU time over the
    measured requests. Unlike throughput it hardly moves when other work shares the machine (the
    server's core is not ours alone here), so it is the figure the comparison rests on."""
    measure(port, path, body, args.connections, 0.0, args.warmup)
    cpu = cpu_seconds(pid)
    result = measure(port, path, body, args.connections, 0.0, args.seconds)
    result["cpu_us_per_request"] = (cpu_seconds(pid) - cpu) * 1e6 / max(result["requests"], 1)
    return result


# ----- in process: the app's own CPU per request, without HTTP or another process in the way -----
INPROCESS = {
    "before": {},
    "off": {},
    "on": {"OTEL_TRACES_EXPORTER": "otlp"},
    "on_sampled_10pct": {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.1",
    },
}


def run_inprocess(requests: int) -> None:
    """One child: the app factory (its settings from the environment), ``requests`` single-row
    predictions called straight through its ASGI interface; prints the CPU per request in µs."""
    import asyncio

    from mlops.serving.app import create_app

    app = create_app()
    body = b'{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}'
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")]
    headers.append((b"content-length", str(len(body)).encode()))
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    async def one() -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/predict",
            "raw_path": b"/predict",
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        await app(scope, receive, send)

    async def main() -> float:
        async with app.router.lifespan_context(app):
            for _ in range(500):
                await one()
            cpu = time.process_time()
            for _ in range(requests):
                await one()
            return (time.process_time() - cpu) * 1e6 / requests

    us = asyncio.run(main())
    assert set(statuses) == {200}, set(statuses)
    print(json.dumps({"cpu_us_per_request": us}))


def inprocess(
    env: dict[str, str], before: Path | None, runs: int, requests: int, port: int
) -> dict[str, Any]:
    """Each variant in a fresh child pinned to core 1, interleaved, ``runs`` times; medians. The
    ``on`` variants export to the collector at ``port`` (the batch processor's thread is counted:
    ``process_time`` covers every thread of the child)."""
    results: dict[str, list[float]] = {k: [] for k in INPROCESS}
    for _ in range(runs):
        for kind, extra in INPROCESS.items():
            child = {**env, **extra, "MLOPS_MODEL_CACHE": "false", "MLOPS_POLL_INTERVAL_S": "3600"}
            if extra:
                child["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{port}"
            if kind == "before":
                if before is None:
                    continue
                child["PYTHONPATH"] = str(before)
            cmd = ["taskset", "-c", "1", sys.executable, __file__, "--inprocess", str(requests)]
            out = subprocess.run(cmd, env=child, cwd=ROOT, capture_output=True, text=True, timeout=600)
            if out.returncode != 0:
                raise RuntimeError(f"{kind}: {out.stderr[-2000:]}")
            results[kind].append(json.loads(out.stdout.strip().splitlines()[-1])["cpu_us_per_request"])
            print(f"in-process {kind:18s} {results[kind][-1]:.1f} us/request", flush=True)
    median = {k: statistics.median(v) for k, v in results.items() if v}
    return {"runs": results, "median_cpu_us_per_request": median}


# ----- the benchmark -----
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--baseline",
        default=BEFORE_TRACING,
        help=f"commit of the 'before' server (default {BEFORE_TRACING}: the last one without tracing)",
    )
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--inprocess-runs", type=int, default=5, help="0: skip the in-process figures")
    parser.add_argument("--inprocess-requests", type=int, default=5000)
    parser.add_argument("--collector", nargs=2, type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--inprocess", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.collector:
        run_collector(*args.collector)
        return
    if args.inprocess:
        run_inprocess(args.inprocess)
        return
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        sys.exit("needs taskset and 2 cores (server on core 1, load generator on core 0)")
    os.sched_setaffinity(0, {0})
    git = ["git", "-C", str(ROOT)]
    commit = subprocess.run([*git, "rev-parse", "--short", args.baseline], capture_output=True, text=True)
    args.baseline = commit.stdout.strip()

    work = Path(tempfile.mkdtemp(prefix="mlops-bench-tracing-"))
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in args.kinds}
    try:
        from baseline import export_src

        before = export_src(args.baseline, work / "before") if "before" in args.kinds else None
        env, model_uri = prepare(work / "state")
        env = {k: v for k, v in env.items() if not k.startswith("OTEL_")}
        for i in range(args.runs):
            # each run starts with another kind: a server that leaves work behind (a WAL
            # checkpoint, a flush) charges it to a different kind each time, not always the next one
            for kind in args.kinds[i % len(args.kinds) :] + args.kinds[: i % len(args.kinds)]:
                # one state folder per kind, one registry: the prediction log of each at its own
                # code's schema (an older release's alembic cannot upgrade a newer one's file, and
                # its shipper would then insert nothing, sparing its server the shipping)
                server_env = {
                    **env,
                    "MLOPS_HOME": str(work / f"home-{kind}"),
                    "MLOPS_TRACKING_URI": env["MLFLOW_TRACKING_URI"],
                }
                if kind == "before":
                    server_env["PYTHONPATH"] = str(before)
                collector = None
                if kind == "on":
                    collector, port, counts_file = start_collector(work)
                    server_env.update(
                        OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}"
                    )
                served = "before" if kind == "before" else "ours"
                proc, port, path, body = start(served, server_env, model_uri, work / f"{kind}.log", before)
                try:
                    result = measured(proc.pid, port, path, body, args)
                finally:  # graceful: the batch processor's last spans are exported
                    left = stop(proc, server_env)
                result["left_in_spool"] = left
                if collector is not None:
                    counts = stop_collector(collector, counts_file)
                    result["spans_exported"] = counts["spans"]
                    result["export_requests"] = counts["requests"]
                runs[kind].append(result)
                shown = {k: round(v, 2) for k, v in result.items()}
                print(f"run {i + 1} {kind:6s} {json.dumps(shown)}", flush=True)
        in_process: dict[str, Any] = {}
        if args.inprocess_runs:
            collector, port, counts_file = start_collector(work)
            try:
                in_process = inprocess(env, before, args.inprocess_runs, args.inprocess_requests, port)
            finally:
                in_process["collector"] = stop_collector(collector, counts_file)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    keys = ("rps", "p50_ms", "p99_ms", "errors", "client_cpu", "cpu_us_per_request")
    median = {k: {key: statistics.median(r[key] for r in rs) for key in keys} for k, rs in runs.items()}
    report: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_average_at_end": os.getloadavg(),
        },
        "settings": {k: v for k, v in vars(args).items() if k in SETTINGS},
        "baseline": args.baseline,
        "model": model_uri,
        "runs": runs,
        "median": median,
        "comparison": comparison(median),
        "in_process": in_process,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    shown = {
        "median": median,
        "comparison": report["comparison"],
        "in_process": in_process.get("median_cpu_us_per_request"),
    }
    print(json.dumps(shown, indent=2))


def comparison(median: dict[str, dict[str, float]]) -> dict[str, float]:
    """Ratios of the medians: the server's CPU per request (the robust figure) and throughput."""
    out: dict[str, float] = {}
    cpu = {k: m["cpu_us_per_request"] for k, m in median.items()}
    if {"off", "before"} <= set(median):
        out["off_vs_before_cpu_per_request"] = cpu["off"] / cpu["before"]
        out["off_minus_before_cpu_us_per_request"] = cpu["off"] - cpu["before"]
        out["off_vs_before_throughput"] = median["off"]["rps"] / median["before"]["rps"]
    if {"on", "off"} <= set(median):
        out["on_vs_off_cpu_per_request"] = cpu["on"] / cpu["off"]
        out["on_minus_off_cpu_us_per_request"] = cpu["on"] - cpu["off"]
        out["on_vs_off_throughput"] = median["on"]["rps"] / median["off"]["rps"]
        out["on_minus_off_p50_ms"] = median["on"]["p50_ms"] - median["off"]["p50_ms"]
    return out


if __name__ == "__main__":
    main()
