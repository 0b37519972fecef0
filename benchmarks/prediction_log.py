"""The prediction log under the service's full single-worker throughput: does it keep up, lose nothing?

One `mlops serve`-equivalent worker (``mlops.serving.server.serve`` on ``create_app``, pinned to core
1 with its shipper process) answers single-row iris predictions from ``--connections`` keep-alive
connections (the load generator pinned to core 0) for ``--seconds``. Each run has a fresh prediction
database; after the load stops the server is stopped gracefully (SIGTERM to its process group) and
the rows are counted once it has exited, i.e. at the end of the drain. Per run:

- ``served``: 200 answers (the readiness probe included), ``written``: rows in ``predictions``,
  ``dropped``/``ratio`` = written / served (1.00 is the goal); with shadow on, ``scorings`` and its
  ratio too;
- ``rps``: answers per second of load, with the log on and, in the same sequence of runs
  (alternating), with the log off (the writer's ``submit`` a no-op): ``on_vs_off`` >= 0.9 is the goal.

Shadow "on" submits one ``ScoringRecord`` per prediction from this benchmark's app setup (a writer
subclass whose ``submit`` also logs a shadow scoring of version ``shadow``), not through a real
shadow rollout: it measures the log's load, not the candidate's scoring. Databases: SQLite (a file
in the state folder) and PostgreSQL at 127.0.0.1:5432 (user postgres, a fresh database per run).

    .venv/bin/python benchmarks/prediction_log.py [--seconds 60] [--runs 3] [--connections 64]
        [--databases sqlite postgres] [--shadow off on]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from common import check_cores, prepare, write_results
from serving import EXAMPLE, ROOT, free_port, one_request, read_response, request_bytes, stop

PG = "postgresql://postgres@127.0.0.1:5432"


# ----- the server: `mlops serve` with one worker, the writer chosen by the benchmark -----
def run_server(port: int, log: str, shadow: str) -> None:
    from mlops.serving import app, server
    from mlops.serving.prediction_writer import PredictionWriter
    from mlops.settings import get_settings
    from mlops.stores.predictions import Record, ScoringRecord

    class Writer(PredictionWriter):
        def submit(self, record: Record) -> None:
            if log == "off":
                return
            super().submit(record)
            if shadow == "on":
                self.submit_scoring(
                    ScoringRecord(
                        record.request_id,
                        record.at,
                        record.project,
                        record.model_name,
                        "shadow",
                        "shadow",
                        record.prediction,
                        record.label,
                        record.probabilities,
                        record.latency_ms,
                    )
                )

    app.PredictionWriter = Writer  # type: ignore[misc]  # what create_app's lifespan builds
    server.serve(get_settings(), "iris", "127.0.0.1", port)


# ----- load: closed loop, every answer counted -----
async def load(port: int, connections: int, seconds: float) -> dict[str, Any]:
    request = request_bytes(port, "/predict", json.dumps(EXAMPLE).encode())
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    clock = time.perf_counter
    end = clock() + seconds

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while (sent := clock()) < end:
                writer.write(request)
                status, _ = await asyncio.wait_for(read_response(reader), timeout=30)
                latencies.append(clock() - sent)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    begin = clock()
    await asyncio.gather(*(connection() for _ in range(connections)))
    elapsed = clock() - begin
    latencies.sort()
    n = len(latencies)
    return {
        "ok": statuses.get(200, 0),
        "errors": n - statuses.get(200, 0),
        "rps": statuses.get(200, 0) / elapsed,
        "p50_ms": latencies[n // 2] * 1000,
        "p99_ms": latencies[min(n - 1, int(n * 0.99))] * 1000,
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(port: int, connections: int, seconds: float) -> dict[str, Any]:
    try:
        import uvloop

        return uvloop.run(load(port, connections, seconds))
    except ImportError:
        return asyncio.run(load(port, connections, seconds))


# ----- databases -----
def fresh_database(kind: str, work: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{work / f'log-{uuid.uuid4().hex[:8]}.db'}"
    import psycopg2

    from mlops.stores import migrate

    name = f"mlops_bench_log_{uuid.uuid4().hex[:10]}"
    conn = psycopg2.connect(f"{PG}/postgres")
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    conn.close()
    url = f"{PG}/{name}"
    migrate.upgrade(url, ["predictions"])  # server databases are migrated by `mlops db upgrade`
    return url


def drop_database(url: str) -> None:
    if not url.startswith("postgresql"):
        return
    import psycopg2

    conn = psycopg2.connect(f"{PG}/postgres")
    conn.autocommit = True
    with conn.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {url.rpartition('/')[2]} WITH (FORCE)")
    conn.close()


def count_rows(url: str) -> tuple[int, int]:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            answers = conn.execute(sa.text("SELECT count(*) FROM predictions")).scalar_one()
            besides = conn.execute(sa.text("SELECT count(*) FROM scorings")).scalar_one()
    finally:
        engine.dispose()
    return int(answers), int(besides)


def one_run(
    env: dict[str, str], model_uri: str, work: Path, db: str, log: str, shadow: str, args: argparse.Namespace
) -> dict[str, Any]:
    url = fresh_database(db, work)
    run_env = {**env, "MLOPS_PREDICTION_LOG_URL": url}
    here = str(Path(__file__).resolve())
    server_cmd = [
        "taskset",
        "-c",
        "1",
        sys.executable,
        here,
        "--server",
        "0",
        "--log",
        log,
        "--shadow",
        shadow,
    ]
    try:
        proc, port = launch(server_cmd, run_env, work / "server.log")
        children = subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        if args.shipper_core == "any":  # the worker stays on core 1; its shipper may run on either core
            for child in children:
                subprocess.run(["taskset", "-a", "-p", "-c", "0,1", child], capture_output=True, check=True)
        pids = [proc.pid, *map(int, children)]
        cpu = [cpu_seconds(pid) for pid in pids]
        result = measure(port, args.connections, args.seconds)
        spent = [cpu_seconds(pid) - before for pid, before in zip(pids, cpu, strict=True)]
        # CPU per answer: what the log costs the worker (and its shipper), whatever else runs here
        result["worker_cpu_us"] = spent[0] / max(result["ok"], 1) * 1e6
        result["shipper_cpu_us"] = sum(spent[1:]) / max(result["ok"], 1) * 1e6
        stopped = time.perf_counter()
        stop(proc)
        result["drain_s"] = time.perf_counter() - stopped
        answers, besides = count_rows(url)
    finally:
        drop_database(url)
    served = result["ok"] + 1  # the readiness probe was a prediction too
    result.update(served=served, written=answers)
    if log == "on":
        result.update(dropped=served - answers, ratio=answers / served)
        if shadow == "on":
            result.update(scorings=besides, scorings_ratio=besides / served)
    return result


def launch(cmd: list[str], env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """The server on a free port, once one real prediction answered 200 (it counts as served)."""
    port = free_port()
    cmd = [*cmd]
    cmd[cmd.index("--server") + 1] = str(port)
    with log.open("ab") as fh:
        proc = subprocess.Popen(
            cmd, env=env, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
    body = json.dumps(EXAMPLE).encode()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # bounded wait until a real prediction answers 200
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}; see {log}")
        with contextlib.suppress(OSError):
            if asyncio.run(one_request(port, "/predict", body))[0] == 200:
                return proc, port
        time.sleep(0.25)
    stop(proc)
    raise TimeoutError(f"the server is not answering on port {port}; see {log}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument(
        "--databases", nargs="+", default=["sqlite", "postgres"], choices=["sqlite", "postgres"]
    )
    parser.add_argument("--shadow", nargs="+", default=["off", "on"], choices=["off", "on"])
    parser.add_argument(
        "--shipper-core",
        default="any",
        choices=["any", "same"],
        help="any: the shipper process may run on either core (the worker stays on core 1); "
        "same: it shares core 1 with the worker",
    )
    parser.add_argument("--out", default="prediction_log.json")
    parser.add_argument("--server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--log", default="on", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.server is not None:
        run_server(args.server, args.log, args.shadow[0])
        return
    check_cores()
    work = Path(tempfile.mkdtemp(prefix="mlops-bench-log-"))
    runs: dict[str, list[dict[str, Any]]] = {}
    try:
        env, model_uri = prepare(work / "state")
        for db in args.databases:
            for shadow in args.shadow:
                for i in range(args.runs):
                    for log in ("off", "on"):  # alternating: the ratio compares neighbouring runs
                        key = f"{db}/shadow-{shadow}/log-{log}"
                        result = one_run(env, model_uri, work, db, log, shadow, args)
                        runs.setdefault(key, []).append(result)
                        shown = {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}
                        print(f"run {i + 1} {key} {json.dumps(shown)}", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    median = {
        key: {k: statistics.median(r[k] for r in results) for k in results[0]}
        for key, results in runs.items()
    }
    verdict: dict[str, dict[str, Any]] = {}
    for db in args.databases:
        for shadow in args.shadow:
            on, off = runs[f"{db}/shadow-{shadow}/log-on"], runs[f"{db}/shadow-{shadow}/log-off"]
            ratios = [a["rps"] / b["rps"] for a, b in zip(on, off, strict=True)]
            # a CPU-bound worker's throughput ratio, from its CPU per answer (robust to other load)
            cpu_ratios = [b["worker_cpu_us"] / a["worker_cpu_us"] for a, b in zip(on, off, strict=True)]
            verdict[f"{db}/shadow-{shadow}"] = {
                "written_per_served": [r["ratio"] for r in on],
                "dropped": [r["dropped"] for r in on],
                "scorings_per_served": [r.get("scorings_ratio") for r in on] if shadow == "on" else None,
                "on_vs_off_rps": ratios,
                "on_vs_off_rps_median": statistics.median(ratios),
                "on_vs_off_worker_cpu": cpu_ratios,
                "on_vs_off_worker_cpu_median": statistics.median(cpu_ratios),
                "shipper_cpu_us_per_answer_median": statistics.median(r["shipper_cpu_us"] for r in on),
                "keeps_up": all(r["ratio"] == 1.0 for r in on)
                and (shadow == "off" or all(r["scorings_ratio"] == 1.0 for r in on)),
            }
    report = {
        "settings": {
            k: getattr(args, k)
            for k in ("seconds", "runs", "connections", "databases", "shadow", "shipper_core")
        },
        "shadow_source": "benchmark app setup: one ScoringRecord per prediction (no real shadow rollout)",
        "runs": runs,
        "median": median,
        "verdict": verdict,
    }
    path = write_results(args.out, report)
    print(json.dumps(verdict, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
