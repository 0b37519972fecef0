"""The same user command on a baseline commit and on the working tree, interleaved: did a change cost time?

A restructuring should not make `mlops train` or `mlops batch-predict` slower. Each run is one whole
command in a fresh state folder, timed from outside (wall clock of the process, imports included);
the baseline is ``--baseline``'s ``src`` (``git archive``: benchmarks/baseline.py), run with this
checkout's virtual environment (``PYTHONPATH`` puts it first: the same pinned dependencies serve both). Runs
alternate and swap which tree goes first, so a machine that speeds up or slows down during the benchmark
weighs on both alike; figures are medians, and ``ratio`` is current / baseline (below 1: faster).

    .venv/bin/python benchmarks/versus.py train [--baseline 117f35d] [--runs 5]
    .venv/bin/python benchmarks/versus.py batch [--baseline 117f35d] [--runs 5] [--rows 500000]

Results go to ``benchmarks/results/versus-<job>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from baseline import export_src

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = ROOT / "benchmarks" / "results"


def _env(src: Path, home: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("MLOPS_", "ZENML_", "MLFLOW_"))}
    return {
        **keep,
        "PYTHONPATH": str(src),
        "MLOPS_HOME": str(home),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "ZENML_ANALYTICS_OPT_IN": "false",
    }


def _mlops(src: Path, home: Path, *args: str) -> float:
    """Seconds one `mlops ARGS` takes with ``src`` first on the path; fails loudly on a failed command."""
    cmd = [sys.executable, "-m", "mlops.cli", *args]
    start = time.perf_counter()
    out = subprocess.run(cmd, env=_env(src, home), cwd=ROOT, capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"{' '.join(args)} failed with {src}:\n{out.stderr[-3000:]}")
    return seconds


def _batch_input(folder: Path, rows: int) -> Path:
    path = folder / "input.parquet"
    _mlops(
        ROOT / "src",
        folder / "gen-state",
        "generate",
        "--project",
        "readmission",
        "--rows",
        str(rows),
        "--output",
        str(path),
    )
    return path


def run(job: str, baseline: str, runs: int, rows: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mlops-versus-") as tmp:
        folder = Path(tmp)
        trees = {"baseline": export_src(baseline, folder / "baseline"), "current": ROOT / "src"}
        times: dict[str, list[float]] = {name: [] for name in trees}
        source = _batch_input(folder, rows) if job == "batch" else None
        homes = {}
        if job == "batch":  # one trained readmission model per tree (it goes to staging), not timed
            for name, src in trees.items():
                homes[name] = folder / f"{name}-state"
                _mlops(src, homes[name], "train", "--project", "readmission", "--json")
        for i in range(runs):
            order = list(trees) if i % 2 == 0 else list(reversed(trees))
            for name in order:
                src = trees[name]
                if job == "train":
                    times[name].append(_mlops(src, folder / f"{name}-{i}", "train", "--json"))
                else:
                    out = folder / f"{name}-{i}.parquet"
                    args = ["batch-predict", str(source), "--project", "readmission", "--alias", "staging"]
                    times[name].append(_mlops(src, homes[name], *args, "--output", str(out), "--json"))
                    out.unlink()
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {
        "job": job,
        "command": "mlops train --json" if job == "train" else f"mlops batch-predict ({rows:,} rows)",
        "baseline": baseline,
        "current": subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip(),
        "runs": runs,
        "seconds": times,
        "median_s": medians,
        "ratio": medians["current"] / medians["baseline"],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", choices=("train", "batch"))
    parser.add_argument("--baseline", default="117f35d")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--rows", type=int, default=500_000)
    args = parser.parse_args()
    result = run(args.job, args.baseline, args.runs, args.rows)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"versus-{args.job}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("command", "median_s", "ratio")}, indent=2))


if __name__ == "__main__":
    main()
