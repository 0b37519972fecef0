"""Batch scoring throughput: `mlops.batch.score_file` against a raw onnxruntime loop on the same file.

Raw = the least code that can do the job: read the same Parquet in the same chunks, feed an ONNX
session of its own (the registered version's model.onnx), write the predicted class to Parquet.
Ours adds the data gate per chunk, the optional raw→feature mapping, probabilities and lineage
columns, and the atomic rename. Each measurement is a fresh process (peak RSS is that process's),
alternating raw/ours, median of N. With ``--before REF``, ``score_file`` of the tree of commit REF
(``git archive`` into a temporary folder, imported through ``PYTHONPATH``) runs in the same
rotation on the same model and file ("before"), so a change is measured against its baseline under
the same load.

    .venv/bin/python benchmarks/batch.py [--project iris] [--sizes 100000 1000000 10000000] [--runs 3]
        [--before 343c736] [--out batch_vs_before-readmission.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

WORKER = r"""
import json, resource, sys, time
from pathlib import Path
mode, project, source, out, chunk = sys.argv[1:6]  # mode: raw | ours
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
def cpu():  # all threads of this process: the work done, whatever else loads the machine
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
start, cpu_start = time.perf_counter(), cpu()
if mode == "ours":
    from mlops.batch import score_file
    rows = score_file(model, source, out, chunk_rows=chunk).rows
else:
    import mlflow, numpy as np, onnxruntime as ort, pyarrow as pa, pyarrow.parquet as pq
    spec, uri = model.spec, f"models:/{model.name}/{version}/extra_files/model.onnx"
    onnx_bytes = Path(mlflow.artifacts.download_artifacts(uri)).read_bytes()
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    start, cpu_start = time.perf_counter(), cpu()  # the session is made untimed, as runtime.load's is
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
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rows": rows, "seconds": elapsed, "cpu_seconds": cpu_seconds, "peak_rss_mb": peak}))
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
    """One fresh process; mode "before" runs ``score_file`` of the baseline tree (``env`` names it)."""
    if mode == "before":
        mode, env = "ours", {**env, "PYTHONPATH": env["MLOPS_BENCH_BEFORE_SRC"]}
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, mode, project, str(source), str(out), str(chunk)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--project", default="iris")
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 10_000_000])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=250_000)
    parser.add_argument("--before", default="", help="also run score_file of this commit's tree")
    parser.add_argument("--out", default="", help="result file name in benchmarks/results/")
    args = parser.parse_args()
    modes = ("raw", "ours", "before") if args.before else ("raw", "ours")
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
                for mode in modes:
                    samples[mode].append(
                        measure(mode, args.project, source, Path(tmp) / f"{mode}.parquet", args.chunk, env)
                    )
            row = {"rows": size}
            for mode, values in samples.items():
                row[f"{mode}_rows_per_s"] = statistics.median(v["rows"] / v["seconds"] for v in values)
                row[f"{mode}_rows_per_cpu_s"] = statistics.median(
                    v["rows"] / v["cpu_seconds"] for v in values
                )
                row[f"{mode}_rows_per_s_runs"] = [round(v["rows"] / v["seconds"]) for v in values]
                row[f"{mode}_rows_per_cpu_s_runs"] = [round(v["rows"] / v["cpu_seconds"]) for v in values]
                row[f"{mode}_peak_rss_mb"] = max(v["peak_rss_mb"] for v in values)
            row["ratio"] = row["ours_rows_per_s"] / row["raw_rows_per_s"]
            if args.before:
                row["before_commit"] = args.before
                row["before_ratio"] = row["before_rows_per_s"] / row["raw_rows_per_s"]
                row["ours_vs_before"] = row["ours_rows_per_s"] / row["before_rows_per_s"]
                row["ours_vs_before_cpu"] = row["ours_rows_per_cpu_s"] / row["before_rows_per_cpu_s"]
            results.append(row)
            source.unlink()
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / (args.out or f"batch-{args.project}.json")).write_text(json.dumps(results, indent=2))
    print("| rows | raw onnxruntime (rows/s) | mlops batch (rows/s) | ratio | peak RSS raw / ours (MB) |")
    print("|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['rows']:,} | {r['raw_rows_per_s']:,.0f} | {r['ours_rows_per_s']:,.0f} | "
            f"{r['ratio']:.2f} | "
            f"{r['raw_peak_rss_mb']:.0f} / {r['ours_peak_rss_mb']:.0f} |"
        )
    if args.before:
        print(
            f"\n| rows | before {args.before} (rows/s) | ratio to raw | ours / before | "
            "rows per CPU-second before / ours | ours / before (CPU) | peak RSS before (MB) |"
        )
        print("|---|---|---|---|---|---|---|")
        for r in results:
            print(
                f"| {r['rows']:,} | {r['before_rows_per_s']:,.0f} | {r['before_ratio']:.2f} | "
                f"{r['ours_vs_before']:.2f} | "
                f"{r['before_rows_per_cpu_s']:,.0f} / {r['ours_rows_per_cpu_s']:,.0f} | "
                f"{r['ours_vs_before_cpu']:.2f} | {r['before_peak_rss_mb']:.0f} |"
            )


if __name__ == "__main__":
    main()
