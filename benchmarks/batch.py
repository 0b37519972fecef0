"""Batch scoring throughput of both engines against a fair compute floor, on the same Parquet file.

Modes, each a fresh process (the model and, for Spark, the session are made untimed, as
``runtime.load``'s session is):
- ``floor``: ONNX ``session.run`` over the file's rows already encoded in memory (feeds built
  untimed by ``ml.onnx_feeds``), in chunks: no I/O, no pandas, no gate. What the hardware allows.
- ``astype``: the least code that reads, converts every cell with ``astype(str)``, runs ONNX and
  writes the class (formerly called "raw onnxruntime"; it is no floor: ``local`` beats it).
- ``local``: ``mlops.batch.score_file``, Parquet in and out, gate, probabilities, lineage columns.
- ``spark1`` / ``spark2``: ``mlops.batch.spark.score_file`` in ``local[1]`` / ``local[2]``, one ONNX
  Runtime thread per task.
CPU-seconds and peak memory cover the whole process tree (the JVM and Spark's Python workers too),
sampled from /proc. With ``--before REF``, ``score_file`` of commit REF's tree also runs ("before").

    .venv/bin/python benchmarks/batch.py [--project readmission] [--sizes 10000000] [--runs 3]
        [--modes floor astype local spark1 spark2] [--out batch_engines-readmission.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODES = ("floor", "astype", "local", "spark1", "spark2")

WORKER = r"""
import json, os, resource, sys, threading, time
from pathlib import Path
mode, project, source, out, chunk = sys.argv[1:6]
source, out, chunk = Path(source), Path(out), int(chunk)
from mlops.configure import configure_libraries
from mlops.settings import get_settings
settings = configure_libraries(get_settings())
from mlops import runtime
from mlops.registry import Registry
from mlops.projects import get_project
version = Registry(settings, project).alias_version(get_project(project).promotion_target)
model = runtime.load(settings, project, version)
assert model.runtime == "onnx", "benchmark needs a model whose ONNX parity passed"
import mlops.batch, mlops.data.validation, pandera.pandas, pyarrow.csv, pyarrow.parquet  # not timed
TICK = os.sysconf("SC_CLK_TCK")

def tree():  # this process and its descendants (the JVM, Spark's Python workers), from /proc
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry)] = (int(stat[1]), stat)
            except OSError:
                pass
    found, todo = {}, [os.getpid()]
    while todo:
        pid = todo.pop()
        if pid in parents:
            found[pid] = parents[pid][1]
        todo += [p for p, (ppid, _) in parents.items() if ppid == pid]
    return found

def cpu():  # user+system seconds of the live tree, plus what its exited children used
    return sum(int(s[11]) + int(s[12]) + int(s[13]) + int(s[14]) for s in tree().values()) / TICK

peak = [0.0]
def sample():
    while True:
        rss = 0
        for pid in tree():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
            except OSError:
                pass
        peak[0] = max(peak[0], rss / 1024)
        time.sleep(0.2)

threading.Thread(target=sample, daemon=True).start()
extra = {}
if mode in ("spark1", "spark2"):
    from mlops.batch import spark as engine
    t = time.perf_counter()
    session = engine.session(settings, master=f"local[{mode[-1]}]")
    extra["session_seconds"] = time.perf_counter() - t
    start, cpu_start = time.perf_counter(), cpu()
    rows = engine.score_file(model, source, out, spark=session, chunk_rows=min(chunk, 100_000)).rows
elif mode == "local":
    from mlops.batch import score_file
    start, cpu_start = time.perf_counter(), cpu()
    rows = score_file(model, source, out, chunk_rows=chunk).rows
elif mode == "floor":
    import onnxruntime as ort
    import pyarrow.parquet as pq
    from mlops.ml import onnx_feeds
    spec = model.spec
    session = ort.InferenceSession(model.onnx_bytes, providers=["CPUExecutionProvider"])
    output = [session.get_outputs()[1].name]
    feeds = []  # pre-encoded: the cost of reading and encoding is left out
    for batch in pq.ParquetFile(source).iter_batches(batch_size=chunk):
        frame = batch.to_pandas()
        feeds.append(onnx_feeds.from_frame(spec, spec.prepare(frame) if spec.prepare else frame))
    start, cpu_start = time.perf_counter(), cpu()
    rows = 0
    for feed in feeds:
        rows += len(session.run(output, feed)[0])
else:  # astype: read, convert every cell, run, write the class
    import numpy as np, onnxruntime as ort, pyarrow as pa, pyarrow.parquet as pq
    spec = model.spec
    session = ort.InferenceSession(model.onnx_bytes, providers=["CPUExecutionProvider"])
    start, cpu_start = time.perf_counter(), cpu()
    writer, rows = None, 0
    for batch in pq.ParquetFile(source).iter_batches(batch_size=chunk):
        feeds = {}
        for f in spec.features:
            col = batch.column(f.name).to_numpy(zero_copy_only=False)
            typed = col.astype(np.float32) if f.kind == "numeric" else col.astype(str).astype(object)
            feeds[f.name] = typed.reshape(-1, 1)
        label = session.run([session.get_outputs()[0].name], feeds)[0]
        table = pa.table({"prediction": pa.array(np.asarray(label).astype(np.int32))})
        writer = writer or pq.ParquetWriter(out, table.schema, compression="zstd")
        writer.write_table(table)
        rows += len(label)
    writer.close()
elapsed, cpu_seconds = time.perf_counter() - start, cpu() - cpu_start
self_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rows": rows, "seconds": elapsed, "cpu_seconds": cpu_seconds,
                  "peak_rss_mb": max(peak[0], self_peak), **extra}))
os._exit(0)  # the JVM goes with the process group the harness kills
"""


def make_input(project: str, rows: int, path: Path) -> None:
    """Feature rows for the project, written in chunks (10M rows never sit in memory at once)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlops.projects import get_project
    from mlops.settings import get_settings

    spec = get_project(project)
    base = spec.load(get_settings())
    if spec.prepare is not None:
        base = spec.prepare(base)
    base = base[spec.feature_names]
    writer = None
    done, seed = 0, 0
    while done < rows:
        n = min(1_000_000, rows - done)
        table = pa.Table.from_pandas(base.sample(n, replace=True, random_state=seed), preserve_index=False)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
        done, seed = done + n, seed + 1
    assert writer is not None
    writer.close()


def baseline_src(ref: str, folder: Path) -> Path:
    """The ``src/`` of commit ``ref``, extracted without touching any work tree."""
    archive = subprocess.run(["git", "archive", ref, "src"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive.stdout, check=True)
    return folder / "src"


def measure(mode: str, project: str, source: Path, out: Path, chunk: int, env: dict[str, str]) -> dict:
    """One fresh process in its own group (Spark's JVM and workers die with it); mode "before" runs
    ``score_file`` of the baseline tree (``env`` names it)."""
    import shutil
    import signal

    if mode == "before":
        mode, env = "local", {**env, "PYTHONPATH": env["MLOPS_BENCH_BEFORE_SRC"]}
    if out.is_dir():
        shutil.rmtree(out)
    out.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, mode, project, str(source), str(out), str(chunk)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=3600)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    if proc.returncode != 0:
        raise SystemExit(stderr[-3000:])
    return json.loads(stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", default="readmission")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=250_000)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=[*MODES, "before"])
    parser.add_argument("--before", default="", help="also run score_file of this commit's tree")
    parser.add_argument("--out", default="", help="result file name in benchmarks/results/")
    args = parser.parse_args()
    modes = [*args.modes, "before"] if args.before else list(args.modes)
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        env = {
            **os.environ,
            "MLOPS_HOME": str(state),
            "ZENML_CONFIG_PATH": str(state / "zenml"),
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
        if args.before:
            env["MLOPS_BENCH_BEFORE_SRC"] = str(baseline_src(args.before, Path(tmp)))
        os.environ.update(env)
        from common import train_register_promote
        from mlops.configure import configure_libraries
        from mlops.settings import get_settings

        get_settings.cache_clear()
        train_register_promote(configure_libraries(get_settings()), args.project)
        results = []
        for size in args.sizes:
            source = Path(tmp) / f"in-{size}.parquet"
            make_input(args.project, size, source)
            samples: dict[str, list[dict]] = {mode: [] for mode in modes}
            for _ in range(args.runs):
                for mode in modes:  # alternating: every mode sees the same load over time
                    samples[mode].append(
                        measure(mode, args.project, source, Path(tmp) / f"{mode}.parquet", args.chunk, env)
                    )
            row: dict = {"rows": size, "runs": args.runs, "cores": os.cpu_count()}
            for mode, values in samples.items():
                row[f"{mode}_rows_per_s"] = statistics.median(v["rows"] / v["seconds"] for v in values)
                row[f"{mode}_cpu_us_per_row"] = statistics.median(
                    1e6 * v["cpu_seconds"] / v["rows"] for v in values
                )
                row[f"{mode}_rows_per_s_runs"] = [round(v["rows"] / v["seconds"]) for v in values]
                row[f"{mode}_peak_rss_mb"] = max(v["peak_rss_mb"] for v in values)
                if "session_seconds" in values[0]:
                    row[f"{mode}_session_seconds"] = statistics.median(v["session_seconds"] for v in values)
            ratios = {
                "local_vs_floor": ("local", "floor"),
                "local_vs_astype": ("local", "astype"),
                "spark2_vs_local": ("spark2", "local"),
                "spark2_vs_spark1": ("spark2", "spark1"),
                "before_vs_local": ("before", "local"),
            }
            for name, (a, b) in ratios.items():
                if a in samples and b in samples:
                    row[name] = row[f"{a}_rows_per_s"] / row[f"{b}_rows_per_s"]
            if args.before:
                row["before_commit"] = args.before
            results.append(row)
            source.unlink()
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / (args.out or f"batch_engines-{args.project}.json")).write_text(json.dumps(results, indent=2))
    print("| rows | mode | rows/s | CPU µs/row | peak RSS (MB) |")
    print("|---|---|---|---|---|")
    for r in results:
        for mode in modes:
            print(
                f"| {r['rows']:,} | {mode} | {r[f'{mode}_rows_per_s']:,.0f} | "
                f"{r[f'{mode}_cpu_us_per_row']:.2f} | {r[f'{mode}_peak_rss_mb']:.0f} |"
            )
        print(", ".join(f"{k} {v:.2f}" for k, v in r.items() if "_vs_" in k))


if __name__ == "__main__":
    main()
