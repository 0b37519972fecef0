"""Hyperparameter search scale-out: 1 vs 2 worker processes completing one Optuna study of readmission.

The training split is made once as the pipeline makes it (generated rows, sealed slice carved off,
seeded split) and written to Parquet; each worker is a fresh process with one thread (OpenMP, BLAS:
``threadpool_limits(1)``; the search's own ``n_jobs`` is 1) that joins one study in a fresh journal
file and runs the trials enqueued there (the same ``--trials`` parameter sets for 1 and 2 workers)
until the study holds ``--trials`` complete ones. Workers start together at a
barrier (imports and data loading are not timed), each in its own session (see ``one_run``).
Runs alternate 1, 2, 1, 2, ... ; medians of ``--runs``; the goal is 2 workers <= 0.6x the wall time
of 1.

    .venv/bin/python benchmarks/search.py [--trials 20] [--rows 6000] [--runs 3]

``--train-before REF``: instead, `mlops train` (iris, the default trial count) of this tree against
the code of git ``REF`` (before the search), alternating fresh processes in fresh state folders;
medians of ``--runs`` to ``results/search-train-iris.json``: the search keeps `make demo` as fast.
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

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def make_training_split(rows: int, seed: int, out: Path) -> int:
    """Generated readmission rows, sealed slice off, the pipeline's split: the training part to ``out``."""
    from mlops.data.readmission import cleaning
    from mlops.data.readmission.generator import generate
    from mlops.data.split import seal, split
    from mlops.governance.sealed import columns
    from mlops.projects import get_project
    from mlops.settings import Settings

    settings, spec = Settings(), get_project("readmission")
    rest, _ = seal(cleaning.clean(generate(rows, seed=seed)), columns(spec), settings.sealed_fraction)
    train, _ = split(rest, spec.target, settings.test_size, seed)
    train.to_parquet(out)
    return len(train)


def trial_plan(trials: int, seed: int) -> list[dict[str, Any]]:
    """``trials`` parameter sets drawn at random (seeded) from readmission's space: both set-ups run
    the same trials, so the comparison is the scale-out, not which parameters (and fit costs) two
    differently seeded samplers happen to draw."""
    import optuna

    from mlops.ml import search
    from mlops.projects import get_project

    space = get_project("readmission").search
    draw = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return [search.suggest(draw.ask(), space) for _ in range(trials)]


def enqueue(state: Path, plan: list[dict[str, Any]]) -> None:
    """The study "bench" in a fresh journal file, the planned trials waiting in it."""
    import optuna

    from mlops.ml import search
    from mlops.projects import get_project

    study = optuna.create_study(
        storage=search.open_storage("", state),
        study_name="bench",
        direction=search.direction(get_project("readmission")),  # type: ignore[arg-type]
    )
    for params in plan:
        study.enqueue_trial(params)


def worker(args: argparse.Namespace) -> None:
    """One worker: load, signal ready, wait for the start file, join the study, write a summary."""
    import pandas as pd
    from threadpoolctl import threadpool_limits

    from mlops.ml import search
    from mlops.projects import get_project

    spec = get_project("readmission")
    frame = pd.read_parquet(args.train)
    storage = search.open_storage("", Path(args.state))
    Path(args.ready).touch()
    while not Path(args.go).exists():
        time.sleep(0.01)
    cpu = time.process_time()
    with threadpool_limits(1):
        result = search.run_search(
            spec,
            frame,
            seed=args.seed,
            storage=storage,
            n_trials=args.trials,
            name="bench",
            worker=args.index,
        )
    Path(args.summary).write_text(
        json.dumps(
            {
                "trials_here": result.trials_here,
                "complete": result.complete_trials,
                "cpu_seconds": time.process_time() - cpu,
            }
        )
    )


def one_run(workers: int, train: Path, plan: list[dict[str, Any]], seed: int, tmp: Path) -> dict[str, Any]:
    """Wall time from the start signal until every worker exited; trials per worker."""
    run = Path(tempfile.mkdtemp(dir=tmp))
    trials = len(plan)
    enqueue(run, plan)
    env = {**os.environ, **ONE_THREAD, "PYTHONPATH": str(ROOT / "src")}
    procs = []
    for i in range(workers):
        cmd = [sys.executable, __file__, "--worker", "--index", str(i), "--train", str(train)]
        cmd += ["--state", str(run), "--trials", str(trials), "--seed", str(seed)]
        cmd += [
            "--ready",
            str(run / f"ready{i}"),
            "--go",
            str(run / "go"),
            "--summary",
            str(run / f"out{i}.json"),
        ]
        # Its own session: Linux's autogroup schedules per session, so on a machine shared with
        # other sessions two workers in one session would split one session's CPU share (measured:
        # 2 workers no faster than 1 at load 10), not run as the two machines or pods they stand for.
        procs.append(subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True))
    while not all((run / f"ready{i}").exists() for i in range(workers)):
        if any(p.poll() not in (None, 0) for p in procs):
            sys.exit("a worker failed before the start")
        time.sleep(0.05)
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    (run / "go").touch()
    codes = [p.wait(timeout=3600) for p in procs]
    seconds = time.perf_counter() - start
    if any(codes):
        sys.exit(f"a worker failed: exit codes {codes}")
    outs = [json.loads((run / f"out{i}.json").read_text()) for i in range(workers)]
    return {
        "workers": workers,
        "seconds": round(seconds, 2),
        "complete_trials": max(o["complete"] for o in outs),
        "trials_per_worker": [o["trials_here"] for o in outs],
        "cpu_seconds_per_trial": round(
            sum(o["cpu_seconds"] for o in outs) / sum(o["trials_here"] for o in outs), 2
        ),
        # the machine is shared: the 1-minute load average around the run says how busy it was
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def train_before_after(ref: str, runs: int, out: Path) -> None:
    """Wall time of `mlops train --json` (iris) with this tree's code and with ``ref``'s, alternating."""
    times: dict[str, list[float]] = {"before": [], "after": []}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        archive = subprocess.run(["git", "archive", ref, "src"], cwd=ROOT, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive.stdout, check=True)
        code = {"before": tmp / "src", "after": ROOT / "src"}
        for rep in range(runs):
            for label in ("before", "after"):
                state = tmp / f"{label}-{rep}"
                env = {**os.environ, "PYTHONPATH": str(code[label]), "MLOPS_HOME": str(state)}
                env["ZENML_CONFIG_PATH"] = str(state / "zenml")
                start = time.perf_counter()
                cmd = [sys.executable, "-m", "mlops.cli", "train", "--json"]
                done = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True, timeout=900)
                if done.returncode != 0:
                    sys.exit(f"{label}: mlops train failed: {done.stderr[-2000:]}")
                times[label].append(round(time.perf_counter() - start, 2))
                print(label, rep + 1, times[label][-1], flush=True)
    median = {k: statistics.median(v) for k, v in times.items()}
    report = {
        "benchmark": "mlops train iris, before/after the search step",
        "before_ref": ref,
        "runs": runs,
        "seconds": times,
        "median_seconds": median,
        "ratio_after_over_before": round(median["after"] / median["before"], 3),
        "machine": {"cpus": os.cpu_count(), "load_average_end": round(os.getloadavg()[0], 2)},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["median_seconds"]), report["ratio_after_over_before"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--rows", type=int, default=6000, help="generated readmission rows before the splits")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=RESULTS / "search.json")
    for name in ("--train", "--state", "--ready", "--go", "--summary"):
        parser.add_argument(name, default="")
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--train-before", default="", help="git ref: time `mlops train` before/after")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.train_before:
        train_before_after(args.train_before, args.runs, RESULTS / "search-train-iris.json")
        return
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        train = tmp / "train.parquet"
        train_rows = make_training_split(args.rows, args.seed, train)
        plan = trial_plan(args.trials, args.seed)
        runs: dict[int, list[dict[str, Any]]] = {1: [], 2: []}
        for rep in range(args.runs):
            for workers in (1, 2):
                result = one_run(workers, train, plan, args.seed, tmp)
                print(f"run {rep + 1}: {workers} worker(s) {result}", flush=True)
                runs[workers].append(result)
    median = {w: statistics.median(r["seconds"] for r in rs) for w, rs in runs.items()}
    ratio = median[2] / median[1]
    report = {
        "benchmark": "search",
        "project": "readmission",
        "trials": args.trials,
        "folds": 3,
        "generated_rows": args.rows,
        "train_rows": train_rows,
        "threads_per_worker": 1,
        "storage": "journal file",
        "trials_enqueued": "the same seeded random parameter sets in every run (see trial_plan)",
        "runs": args.runs,
        "median_seconds": {"1_worker": median[1], "2_workers": median[2]},
        "ratio_2_over_1": round(ratio, 3),
        "goal": "2 workers <= 0.6x the time of 1",
        "goal_met": ratio <= 0.6,
        "detail": {f"{w}_worker{'s' if w > 1 else ''}": rs for w, rs in runs.items()},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("median_seconds", "ratio_2_over_1", "goal_met")}))


if __name__ == "__main__":
    main()
