"""Batch scoring throughput: `mlops.batch.score_file` against a raw onnxruntime loop on the same file.

Raw = the least code that can do the job: read the same Parquet in the same chunks, feed the ONNX
session, write the predicted class to Parquet. Ours adds the data gate per chunk, the optional
raw→feature mapping, probabilities and lineage columns, and the atomic rename. Each measurement is a
fresh process (peak RSS is that process's), alternating raw/ours, median of N.

    .venv/bin/python benchmarks/batch.py [--project iris] [--sizes 100000 1000000 10000000] [--runs 3]
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
start = time.perf_counter()
if mode == "ours":
    from mlops.batch import score_file
    rows = score_file(model, source, out, chunk_rows=chunk).rows
else:
    import numpy as np, pyarrow as pa, pyarrow.parquet as pq
    session, spec = model.scorer.session, model.spec
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
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"rows": rows, "seconds": elapsed, "peak_rss_mb": peak}))
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


def measure(mode: str, project: str, source: Path, out: Path, chunk: int, env: dict[str, str]) -> dict:
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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state"
        env = {
            **os.environ,
            "MLOPS_HOME": str(state),
            "ZENML_CONFIG_PATH": str(state / "zenml"),
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
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
            samples: dict[str, list[dict]] = {"raw": [], "ours": []}
            for _ in range(args.runs):
                for mode in ("raw", "ours"):
                    samples[mode].append(
                        measure(mode, args.project, source, Path(tmp) / f"{mode}.parquet", args.chunk, env)
                    )
            row = {"rows": size}
            for mode, values in samples.items():
                row[f"{mode}_rows_per_s"] = statistics.median(v["rows"] / v["seconds"] for v in values)
                row[f"{mode}_peak_rss_mb"] = max(v["peak_rss_mb"] for v in values)
            row["ratio"] = row["ours_rows_per_s"] / row["raw_rows_per_s"]
            results.append(row)
            source.unlink()
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / f"batch-{args.project}.json").write_text(json.dumps(results, indent=2))
    print("| rows | raw onnxruntime (rows/s) | mlops batch (rows/s) | ratio | peak RSS raw / ours (MB) |")
    print("|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['rows']:,} | {r['raw_rows_per_s']:,.0f} | {r['ours_rows_per_s']:,.0f} | "
            f"{r['ratio']:.2f} | "
            f"{r['raw_peak_rss_mb']:.0f} / {r['ours_peak_rss_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
