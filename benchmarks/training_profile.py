"""Where the wall time of one `mlops train` goes: before the first step, each step, between steps, after.

docs/benchmarks.md explains why `mlops train` misses its goal against the naive pipeline with this
profile, so it is measured, not remembered. A fresh state folder is warmed by one untimed run (the
first run creates the databases, as in benchmarks/training.py); then each of ``--runs`` runs is
``python -X importtime <venv>/bin/mlops train --project iris --json`` in a fresh process:

- the process's wall time, split by the ZenML store's own step records of that run (``step_run``
  start and end times): *before the first step* (interpreter start, imports, the ZenML client and
  store, compiling the pipeline), *each step*, *between steps* (ZenML's per-step bookkeeping: step
  runs, output artifacts, log contexts), *after the last step* (the run's end, the summary). These
  add up to the wall time.
- import time by package (``-X importtime`` self time, attributed to the package that brought each
  module in, as benchmarks/coldstart.py does): where it falls (before or inside the steps) it is part
  of the rows above, so it is reported beside them, not added to them.

Figures are medians over runs. ``-X importtime`` itself adds a little to every import.

    .venv/bin/python benchmarks/training_profile.py [--runs 3]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from coldstart import import_profile
from common import write_results
from training import env_for

BIN = Path(sys.executable).parent
COMMAND = [str(BIN / "mlops"), "train", "--project", "iris", "--json"]


def steps_of_last_run(state: Path) -> list[tuple[str, float, float]]:
    """(step, start, end) in epoch seconds, of the newest pipeline run in the state's ZenML store."""
    db = state / "zenml" / "local_stores" / "default_zen_store" / "zenml.db"
    with sqlite3.connect(db) as conn:
        (run,) = conn.execute("SELECT id FROM pipeline_run ORDER BY created DESC LIMIT 1").fetchone()
        rows = conn.execute(
            "SELECT name, start_time, end_time FROM step_run WHERE pipeline_run_id = ? ORDER BY start_time",
            (run,),
        ).fetchall()

    def epoch(stamp: str) -> float:  # the store keeps naive UTC
        return datetime.fromisoformat(stamp).replace(tzinfo=UTC).timestamp()

    return [(name, epoch(start), epoch(end)) for name, start, end in rows]


def one_run(state: Path) -> dict[str, Any]:
    env = env_for(state)
    began = time.time()
    out = subprocess.run(
        [sys.executable, "-X", "importtime", *COMMAND], env=env, capture_output=True, text=True, timeout=900
    )
    ended = time.time()
    if out.returncode:
        raise SystemExit(f"mlops train failed:\n{out.stderr[-3000:]}")
    steps = steps_of_last_run(state)
    gaps = sum(max(0.0, b[1] - a[2]) for a, b in itertools.pairwise(steps))
    return {
        "load_average_1m": os.getloadavg()[0],  # what else the machine was doing
        "wall_s": ended - began,
        "before_first_step_s": steps[0][1] - began,
        "steps_s": {name: end - start for name, start, end in steps},
        "between_steps_s": gaps,
        "after_last_step_s": ended - steps[-1][2],
        "imports_s": import_profile(out.stderr),
    }


def median_of(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    packages = {p for r in runs for p in r["imports_s"]}
    imports = {p: med([r["imports_s"].get(p, 0.0) for r in runs]) for p in packages}
    return {
        **{key: med([r[key] for r in runs]) for key in ("load_average_1m", "wall_s", "before_first_step_s")},
        "steps_s": {step: med([r["steps_s"][step] for r in runs]) for step in runs[0]["steps_s"]},
        **{key: med([r[key] for r in runs]) for key in ("between_steps_s", "after_last_step_s")},
        "imports_s": dict(sorted(imports.items(), key=lambda kv: -kv[1])),
        "imports_total_s": med([sum(r["imports_s"].values()) for r in runs]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default="training_profile.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mlops-bench-train-profile-") as tmp:
        state = Path(tmp) / "state"
        warm = subprocess.run(COMMAND, env=env_for(state), capture_output=True, text=True, timeout=900)
        if warm.returncode:
            raise SystemExit(f"warm-up run failed:\n{warm.stderr[-3000:]}")
        runs = []
        for i in range(args.runs):
            runs.append(one_run(state))
            print(f"run {i + 1}: {runs[-1]['wall_s']:.1f} s", flush=True)
    report = {"command": " ".join(["mlops", *COMMAND[1:]]), "runs": runs, "median": median_of(runs)}
    path = write_results(args.out, {"settings": {"runs": args.runs}, **report})
    median = report["median"]
    print(
        f"wrote {path}: wall {median['wall_s']:.1f} s, "
        f"before the first step {median['before_first_step_s']:.1f} s"
    )


if __name__ == "__main__":
    main()
