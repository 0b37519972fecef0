"""Wall time of `mlops train` against the naive template-style pipeline (benchmarks/naive_pipeline.py).

Both run as fresh processes, alternating, each in its own state folder warmed by one untimed run
(first-run database creation is not what we measure). Reports medians of N runs and the ratio.

    .venv/bin/python benchmarks/training.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def env_for(state: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MLOPS_HOME": str(state),
        "ZENML_CONFIG_PATH": str(state / "zenml"),
        "ZENML_ANALYTICS_OPT_IN": "false",
        "MLFLOW_TRACKING_URI": f"sqlite:///{state / 'mlflow.db'}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }


def timed(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    contenders = {
        "naive (2 steps, inferred requirements)": [sys.executable, "benchmarks/naive_pipeline.py"],
        "mlops train (search, ONNX, gates, promotion)": [str(BIN / "mlops"), "train", "--json"],
    }
    with tempfile.TemporaryDirectory() as tmp:
        states = {name: Path(tmp) / str(i) for i, name in enumerate(contenders)}
        for name, cmd in contenders.items():
            states[name].mkdir()
            timed(cmd, env_for(states[name]))  # warm-up: creates the databases
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for _ in range(args.runs):
            for name, cmd in contenders.items():
                times[name].append(timed(cmd, env_for(states[name])))
    medians = {name: statistics.median(values) for name, values in times.items()}
    naive, ours = medians.values()
    result = {"runs": args.runs, "times_s": times, "medians_s": medians, "ratio": ours / naive}
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / "training.json").write_text(json.dumps(result, indent=2))
    print("| pipeline | median wall time (s) | runs (s) |")
    print("|---|---|---|")
    for name, values in times.items():
        print(f"| {name} | {medians[name]:.2f} | {', '.join(f'{v:.2f}' for v in values)} |")
    print(f"\nratio mlops / naive = {ours / naive:.2f}")


if __name__ == "__main__":
    main()
