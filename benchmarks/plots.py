"""PNG plots of every benchmark, from the raw results in benchmarks/results/ to docs/benchmarks-*.png.

One plot per results file that exists (a missing one is skipped with a note), so the figures in
docs/benchmarks.md always come from the JSON the benchmarks wrote:

    training.json         -> docs/benchmarks-training.png   (wall time per pipeline, each run)
    serving-iris.json     -> docs/benchmarks-serving.png    (throughput and latency)
    hotswap-iris.json     -> docs/benchmarks-hotswap.png    (swap latency; responses around the move)
    coldstart-iris.json   -> docs/benchmarks-coldstart.png  (time to ready; import time by package)
    batch_engines-readmission-10m.json -> docs/benchmarks-batch-readmission.png (rows/s and peak RSS
                          of each engine and the compute floor)

    .venv/bin/python benchmarks/plots.py [--results benchmarks/results] [--docs docs]
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

ROOT = Path(__file__).resolve().parent.parent
OURS, BASELINE = "#1f77b4", "#999999"
NAMES = {"ours": "mlops serve", "cache": "mlops serve (cache)", "mlflow": "mlflow models serve"}


def training(data: dict[str, Any]) -> Figure:
    names = list(data["medians_s"])
    fig, ax = plt.subplots(figsize=(8, 0.9 + 0.8 * len(names)))
    ax.barh(names, [data["medians_s"][n] for n in names], color=[BASELINE, OURS][: len(names)])
    for y, name in enumerate(names):
        ax.plot(
            data["times_s"][name], [y] * len(data["times_s"][name]), "k.", label="runs" if y == 0 else None
        )
    ax.set_xlabel("wall time (s), median and runs")
    ax.set_title(f"Training pipeline: ratio {data['ratio']:.2f} (goal ≤ 0.6)")
    ax.legend(loc="lower right")
    return fig


def serving(data: dict[str, Any]) -> Figure:
    from serving import plot  # the serving benchmark's own figure, drawn from its JSON

    before = set(plt.get_fignums())
    plot(data["median"], Path(os.devnull))  # draws, then saves to nowhere: main saves it to docs/
    (number,) = set(plt.get_fignums()) - before
    return plt.figure(number)


def hotswap(data: dict[str, Any]) -> Figure:
    median, poll = data["median"], data["settings"]["poll_interval"]
    kinds = list(median)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [1, 2]})
    bars = left.bar([NAMES[k] for k in kinds], [median[k]["swap_s"] for k in kinds], color=[OURS, BASELINE])
    for bar, kind in zip(bars, kinds, strict=True):
        note = f"{median[kind]['swap_s']:.2f} s\n{median[kind]['failed']:.0f} failed"
        left.annotate(note, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom")
    left.axhline(2.0, color="green", linestyle="--", label="goal 2 s")
    left.set_ylim(top=1.3 * max(max(median[k]["swap_s"] for k in kinds), 2.0))
    left.set_ylabel("alias move → new model everywhere (s)")
    left.set_title(f"Hot swap (poll interval {poll} s)")
    left.legend()
    # the responses of each server's median run around the alias move (t = 0)
    for row, kind in enumerate(kinds):
        runs = data["runs"][kind]
        run = sorted(runs, key=lambda r: r["swap_s"])[len(runs) // 2]
        for outcome, color in (("old", BASELINE), ("new", OURS), ("failed", "red")):
            line = run["timeline"]
            samples = [dict(zip(line, values, strict=True)) for values in zip(*line.values(), strict=True)]
            xs = [s["sent"] for s in samples if classify(s, run) == outcome]
            right.scatter(xs, [row] * len(xs), s=4, color=color, label=outcome if row == 0 else None)
    right.axvline(0, color="black", linewidth=0.8)
    right.set_yticks(range(len(kinds)), [NAMES[k] for k in kinds])
    right.set_ylim(-0.5, len(kinds) - 0.5)
    right.set_xlabel("request sent, s after the alias move")
    right.set_title("Responses: old model, new model, failed")
    right.legend(loc="upper right", markerscale=3)
    return fig


def classify(sample: dict[str, Any], run: dict[str, Any]) -> str:
    if sample["status"] != 200:
        return "failed"
    if sample["version"] is not None:  # ours names the version in every answer
        return "new" if sample["version"] == run["to"] else "old"
    # mlflow names none: an answer to a request sent after the restart began comes from the new model
    return "new" if sample["sent"] > run["registry_write_s"] + run.get("stop_old_s", 0.0) else "old"


def coldstart(data: dict[str, Any]) -> Figure:
    median = data["median"]
    kinds = list(median)
    profile = data.get("profile", {}).get("importtime")
    fig, axes = plt.subplots(1, 2 if profile else 1, figsize=(11 if profile else 6, 4), squeeze=False)
    ax = axes[0][0]
    x = range(len(kinds))
    ax.bar([i - 0.2 for i in x], [median[k]["ready_s"] for k in kinds], width=0.4, label="ready", color=OURS)
    ax.bar(
        [i + 0.2 for i in x],
        [median[k]["first_prediction_s"] for k in kinds],
        width=0.4,
        label="first prediction",
        color=BASELINE,
    )
    if "mlflow" in median:  # the goal: ready from the cache in a quarter of mlflow models serve's time
        goal = 0.25 * median["mlflow"]["ready_s"]
        ax.axhline(goal, color="green", linestyle="--", label=f"goal 0.25x mlflow ({goal:.1f} s)")
    ax.set_xticks(list(x), [NAMES[k] for k in kinds])
    ax.set_ylabel("s from process start")
    ax.set_title(f"Cold start, median of {data['settings']['runs']} fresh processes")
    ax.legend()
    if profile:
        top = list(profile["by_package_s"].items())[:7]
        rest = profile["total_s"] - sum(v for _, v in top)
        labels, values = [k for k, _ in top] + ["other"], [v for _, v in top] + [rest]
        right = axes[0][1]
        right.barh(labels[::-1], values[::-1], color=OURS)
        right.set_xlabel("import time (s), -X importtime")
        right.set_title(
            f"mlops serve: {profile['total_s']:.1f} s of imports of {profile['ready_s']:.1f} s to ready"
        )
    return fig


BATCH_MODES = {
    "floor": "compute floor",
    "astype": "astype(str) loop",
    "local": "local engine",
    "spark1": "Spark local[1]",
    "spark2": "Spark local[2]",
}


def batch(data: list[dict[str, Any]]) -> Figure:
    """Each engine of benchmarks/batch.py at one size: rows/s (median and runs) and peak memory."""
    (row,) = data
    modes = [m for m in BATCH_MODES if f"{m}_rows_per_s" in row]
    labels = [BATCH_MODES[m] for m in modes]
    colors = [BASELINE if m in ("floor", "astype") else OURS for m in modes]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.barh(labels, [row[f"{m}_rows_per_s"] for m in modes], color=colors)
    for y, mode in enumerate(modes):
        runs = row[f"{mode}_rows_per_s_runs"]
        left.plot(runs, [y] * len(runs), "k.", label="runs" if y == 0 else None)
    left.invert_yaxis()
    left.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:.0f}k"))
    left.set_xlabel("rows / s, median and runs")
    left.set_title(
        f"Batch scoring, {row['rows']:,} readmission rows: local {row['local_vs_floor']:.2f}x floor"
    )
    left.legend(loc="lower right")
    right.barh(labels, [row[f"{m}_peak_rss_mb"] for m in modes], color=colors)
    right.invert_yaxis()
    right.set_xlabel("peak RSS of the process tree (MB)")
    right.set_title("Memory")
    return fig


PLOTS: dict[str, tuple[Callable[[Any], Figure], str]] = {
    "training.json": (training, "benchmarks-training.png"),
    "serving-iris.json": (serving, "benchmarks-serving.png"),
    "hotswap-iris.json": (hotswap, "benchmarks-hotswap.png"),
    "coldstart-iris.json": (coldstart, "benchmarks-coldstart.png"),
    "batch_engines-readmission-10m.json": (batch, "benchmarks-batch-readmission.png"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--docs", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    jobs = dict(PLOTS)
    args.docs.mkdir(parents=True, exist_ok=True)
    for name, (draw, png) in jobs.items():
        source = args.results / name
        if not source.exists():
            print(f"skipped {png}: no {source}")
            continue
        fig = draw(json.loads(source.read_text()))
        fig.tight_layout()
        fig.savefig(args.docs / png, dpi=110)
        plt.close(fig)
        print(f"wrote {args.docs / png} from {source}")


if __name__ == "__main__":
    main()
