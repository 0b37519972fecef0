"""Does ``configure_libraries`` earn its one monkeypatch? ``mlops train`` with and without the
memoised ``packages_distributions`` (``mlops.configure._cache_distribution_lookup``), interleaved.

    .venv/bin/python benchmarks/distribution_cache.py [--runs 3] [--project iris]

Each mode trains in its own state folder, warmed by one untimed run (ZenML store creation is not
what this measures). Result: ``benchmarks/results/distribution-cache.json``.
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

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
# `mlops train` as the console script runs it, optionally with the cache switched off first.
LAUNCH = (
    "import sys\n"
    "import mlops.configure as c\n"
    "if sys.argv.pop(1) == 'off':\n"
    "    c._cache_distribution_lookup = lambda: None\n"
    "from mlops.cli import main\n"
    "sys.argv[0] = 'mlops'\n"
    "main()\n"
)


def train_once(mode: str, home: Path, project: str, src: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system of the process tree) of one `mlops train`."""
    env = {**os.environ, "MLOPS_HOME": str(home), "ZENML_CONFIG_PATH": str(home / "zenml")}
    env["PYTHONPATH"] = str(src)  # a frozen copy of the package may be measured while work goes on
    cmd = [sys.executable, "-c", LAUNCH, mode, "train", "--project", project, "--json"]
    start = time.perf_counter()
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            log.seek(0)
            sys.exit(f"mlops train failed ({mode}):\n{log.read().decode()[-3000:]}")
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--project", default="iris")
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="folder holding `mlops`")
    args = parser.parse_args()
    wall: dict[str, list[float]] = {"on": [], "off": []}
    cpu: dict[str, list[float]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory(prefix="dist-cache-") as tmp:
        homes = {mode: Path(tmp) / mode for mode in wall}
        for mode, home in homes.items():
            train_once(mode, home, args.project, args.src)  # warm-up: creates the ZenML store and experiment
        for _ in range(args.runs):
            for mode, home in homes.items():
                seconds, cpu_seconds = train_once(mode, home, args.project, args.src)
                wall[mode].append(round(seconds, 2))
                cpu[mode].append(round(cpu_seconds, 2))
                print(mode, wall[mode][-1], cpu[mode][-1], flush=True)
    median_cpu = {mode: statistics.median(values) for mode, values in cpu.items()}
    result = {
        "what": f"`mlops train --project {args.project}` per run, interleaved, after one warm-up run each; "
        "CPU seconds (user + system, the process tree) are the figure: wall time swings with the "
        "machine's other load",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "cpu_s": cpu,
        "wall_s": wall,
        "median_cpu_s": median_cpu,
        "median_wall_s": {mode: statistics.median(values) for mode, values in wall.items()},
        "cpu_saved_s": round(median_cpu["off"] - median_cpu["on"], 2),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "distribution-cache.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
