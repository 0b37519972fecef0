"""The request path's per-row cost: ``LoadedModel.predict_rows`` on one row, before and after a change.

The same ONNX files (trained and exported once, here) are scored by this tree and by the tree of a
baseline commit (``git archive`` of ``--before`` into a temporary folder, imported through
``PYTHONPATH`` in a fresh process), alternating before/after, ``--runs`` processes each. Each
process builds the scorer as the service does (``OnnxScorer(spec, onnx, threads=1)`` inside a
``LoadedModel``), warms up, then times ``--calls`` calls of ``predict_rows([spec.example])``: wall
and CPU time per call in µs. The figure is the median over the runs.

    .venv/bin/python benchmarks/scorer.py [--before 343c736] [--projects iris readmission] \
        [--runs 5] [--calls 2000]
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

from baseline import export_src

ROOT = Path(__file__).resolve().parent.parent

WORKER = r"""
import json, sys, time
from pathlib import Path
project, onnx_path, calls = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
import mlops
from mlops import runtime
from mlops.projects import get_project
spec = get_project(project)
model = runtime.LoadedModel(spec, f"{project}-classifier", "1", "run", "onnx",
                            runtime.OnnxScorer(spec, onnx_path.read_bytes(), 1))
rows = [dict(spec.example)]
for _ in range(max(200, calls // 10)):
    model.predict_rows(rows)
wall, cpu = time.perf_counter(), time.process_time()
for _ in range(calls):
    model.predict_rows(rows)
wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
print(json.dumps({"source": mlops.__file__, "wall_us": wall / calls * 1e6, "cpu_us": cpu / calls * 1e6}))
"""


def export_models(projects: list[str], folder: Path) -> dict[str, Path]:
    """One ONNX file per project, trained on the project's own data (seed 42)."""
    from mlops.ml.model import train
    from mlops.ml.onnx_export import export
    from mlops.projects import get_project
    from mlops.settings import Settings

    settings = Settings()
    files = {}
    for project in projects:
        spec = get_project(project)
        path = folder / f"{project}.onnx"
        path.write_bytes(export(spec, train(spec, spec.load(settings), 42)))
        files[project] = path
    return files


def measure(src: Path, project: str, onnx: Path, calls: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src), "MLFLOW_DISABLE_TELEMETRY": "true"}
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, project, str(onnx), str(calls)],
        env=env,
        cwd=src.parent,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if not result["source"].startswith(str(src)):
        raise SystemExit(f"imported {result['source']}, not the tree under {src}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--before", default="343c736", help="baseline commit")
    parser.add_argument("--projects", nargs="+", default=["iris", "readmission"])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2_000)
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"before": export_src(args.before, Path(tmp)), "after": ROOT / "src"}
        models = export_models(args.projects, Path(tmp))
        results = []
        for project in args.projects:
            samples: dict[str, list[dict]] = {"before": [], "after": []}
            for _ in range(args.runs):
                for name, src in trees.items():  # interleaved: load drifts hit both alike
                    samples[name].append(measure(src, project, models[project], args.calls))
            row: dict = {"project": project, "rows_per_call": 1, "calls": args.calls, "runs": args.runs}
            for name, values in samples.items():
                row[f"{name}_wall_us"] = statistics.median(v["wall_us"] for v in values)
                row[f"{name}_cpu_us"] = statistics.median(v["cpu_us"] for v in values)
                row[f"{name}_cpu_us_runs"] = [round(v["cpu_us"], 2) for v in values]
            row["cpu_ratio"] = row["after_cpu_us"] / row["before_cpu_us"]
            results.append(row)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    report = {"before": args.before, "after": commit, "results": results}
    (out / "scorer.json").write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"predict_rows, 1 row, median of {args.runs} runs of {args.calls} calls ({args.before} -> {commit})"
    )
    print("| project | before wall / CPU (µs) | after wall / CPU (µs) | CPU after/before |")
    print("|---|---|---|---|")
    for r in results:
        print(
            f"| {r['project']} | {r['before_wall_us']:.1f} / {r['before_cpu_us']:.1f} | "
            f"{r['after_wall_us']:.1f} / {r['after_cpu_us']:.1f} | {r['cpu_ratio']:.2f} |"
        )


if __name__ == "__main__":
    main()
