"""The figure tables of the docs, generated from the results files in benchmarks/results/.

A published figure that nobody re-measures drifts away from the code. So every table with figures in
docs/benchmarks.md and docs/reliability.md sits between two markers::

    <!-- generated: NAME (benchmarks/tables.py) -->
    | ... the table, then a line naming its results files ... |
    <!-- end generated -->

and is rewritten from the JSON the benchmarks (``make bench``) or the reliability suite
(``make reliability``) wrote. Verdicts ("met", "not met") are computed here from the figures, never
typed. ``--check`` rewrites nothing: it exits 1 with a diff when a committed table differs from
its JSON (tests/static/test_docs_tables.py runs the same check).

Adding a table (for example docs/tracing.md from tracing.json): write ``def tracing(data) -> str``
returning the Markdown table, add ``Table("tracing", "docs/tracing.md", ("tracing.json",), tracing)``
to ``TABLES``, put the two markers where it goes in the doc, run ``python benchmarks/tables.py``.

    .venv/bin/python benchmarks/tables.py [--check] [--results benchmarks/results]
"""

# ruff: noqa: RUF001, RUF002, RUF003  (the docs' typography: ×, –, µ)
from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
START, END = "<!-- generated: {name} (benchmarks/tables.py) -->", "<!-- end generated -->"
BLOCK = re.compile(
    r"<!-- generated: (?P<name>[\w-]+) \(benchmarks/tables\.py\) -->\n(?P<body>.*?)<!-- end generated -->",
    re.DOTALL,
)


@dataclass(frozen=True)
class Table:
    """One generated block: its marker name, the doc it lives in, its results files (names in
    benchmarks/results/, handed to ``render`` in this order, parsed) and the function drawing it."""

    name: str
    doc: str
    sources: tuple[str, ...]
    render: Callable[..., str]


# ----- formatting -----
def n(value: float, digits: int = 0) -> str:
    """A figure as the docs print it: a space between thousands (2 464), ``digits`` decimals."""
    return f"{value:,.{digits}f}".replace(",", " ")


def x(value: float) -> str:
    return f"{value:.2f}×"


def pct(value: float) -> str:
    return f"{100 * value:.0f} %"


def verdict(met: bool) -> str:
    return "met" if met else "**not met**"


def table(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    head = list(header)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def spread(values: Iterable[float], fmt: Callable[[float], str]) -> str:
    """``a–b`` of the values (one value: itself)."""
    ordered = sorted(values)
    low, high = fmt(ordered[0]), fmt(ordered[-1])
    return low if low == high else f"{low}–{high}"


def median_run(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    return sorted(runs, key=lambda r: r[key])[len(runs) // 2]


# ----- docs/benchmarks.md -----
def goals(
    serving: dict[str, Any],
    hotswap: dict[str, Any],
    coldstart: dict[str, Any],
    rollout: dict[str, Any],
    repeat: dict[str, Any],
    log: dict[str, Any],
    batch: list[dict[str, Any]],
    search: dict[str, Any],
    training: dict[str, Any],
) -> str:
    rows = []
    ours, mlflow = serving["median"]["ours"], serving["median"]["mlflow"]
    ratio = serving["ratios"]["throughput_vs_mlflow"]
    rows.append(
        (
            "≥ 20× `mlflow models serve` throughput",
            f"**{ratio:.1f}×** ({n(ours['rps'])} vs {n(mlflow['rps'])} req/s)",
            verdict(ratio >= 20),
        )
    )
    connections = serving["settings"]["connections"]
    rows.append(
        (
            f"p99 ≤ 25 ms at {connections} connections",
            f"**{ours['p99_ms']:.1f} ms**",
            verdict(ours["p99_ms"] <= 25),
        )
    )
    share = serving["ratios"]["share_of_floor"]
    shares = [
        o["rps"] / f["rps"] for o, f in zip(serving["runs"]["ours"], serving["runs"]["floor"], strict=True)
    ]
    rows.append(
        (
            "≥ 80 % of the HTTP floor",
            f"**{pct(share)}** (runs: {', '.join(pct(s) for s in shares)})",
            verdict(share >= 0.8),
        )
    )
    swap, poll = hotswap["median"]["ours"]["swap_s"], hotswap["settings"]["poll_interval"]
    cost = hotswap["swap_cost"]["check_median_s"]
    rows.append(
        (
            "hot swap ≤ 2 s",
            f"**{swap:.2f} s** at a {poll} s poll; bound: poll interval + {cost:.2f} s",
            verdict(swap <= 2),
        )
    )
    cache, registry = coldstart["median"]["cache"]["ready_s"], coldstart["median"]["ours"]["ready_s"]
    cold = coldstart["ratio_ready_vs_mlflow"]["cache"]
    rows.append(
        (
            "cold start ≤ 5 s (issue 6); ≤ 0.25× `mlflow models serve` (issue 12)",
            f"**{cache:.2f} s from the local cache, {cold:.2f}×** ({registry:.2f} s from the registry)",
            verdict(cache <= 5 and cold <= 0.25),
        )
    )
    runs = (rollout, repeat)
    met = [
        run["http"]["throughput_ratio"][m] >= run["http"]["goals"][m]
        for run in runs
        for m in ("shadow", "canary")
    ]
    said = ", ".join(
        f"{mode} {' / '.join(x(run['http']['throughput_ratio'][mode]) for run in runs)}"
        for mode in ("shadow", "canary")
    )
    rows.append(
        (
            "shadow ≥ 0.75×, canary 10 % ≥ 0.95× of no rollout (issue 12)",
            f"{said} (two runs)",
            "met"
            if all(met)
            else "**not met**"
            if not any(met)
            else "**not reliably met** (the runs disagree; see Rollouts)",
        )
    )
    judged = [v for v in log["verdict"].values()]
    written = min(min(v["written_per_served"]) for v in judged)
    dropped = sum(sum(v["dropped"]) for v in judged)
    on_off = [v["on_vs_off_rps_median"] for v in judged]
    rows.append(
        (
            "prediction log: written / served = 1.00, log on ≥ 0.9× off (issue 12)",
            f"**{written:.2f}**, {n(dropped)} dropped; {spread(on_off, x)}",
            f"ratio {verdict(written >= 1.0 and dropped == 0)}; throughput {verdict(min(on_off) >= 0.9)}",
        )
    )
    reach = [s["reach_s"] for run in runs for s in run["switch"]["switches"]]
    failed = sum(run["switch"]["failed"] for run in runs)
    limit = rollout["poll_interval_s"] + 0.1
    rows.append(
        (
            "rollout switch ≤ poll + 0.1 s, 0 failed",
            f"{spread(reach, lambda v: f'{v:.2f}')} s at a {rollout['poll_interval_s']:g} s poll, "
            f"{failed} failed",
            verdict(max(reach) <= limit and failed == 0),
        )
    )
    big = max(batch, key=lambda r: r["rows"])  # the goal is judged at the largest size measured
    rows.append(
        (
            "batch: local engine ≥ 0.7× the compute floor (issue 13)",
            f"**{x(big['local_rows_per_s'] / big['floor_rows_per_s'])}** at {n(big['rows'])} rows "
            f"(runs {spread(big['local_rows_per_s_runs'], n)} rows/s)",
            verdict(big["local_rows_per_s"] / big["floor_rows_per_s"] >= 0.7),
        )
    )
    vs_local = big["spark2_rows_per_s"] / big["local_rows_per_s"]
    vs_one = big["spark2_rows_per_s"] / big["spark1_rows_per_s"]
    rows.append(
        (
            "Spark `local[2]` ≥ 0.8× local engine; `local[2]` ≥ 1.4× `local[1]` (issue 13)",
            f"**{x(vs_local)}**; **{x(vs_one)}** at {n(big['rows'])} rows",
            verdict(vs_local >= 0.8 and vs_one >= 1.4),
        )
    )
    two = search["ratio_2_over_1"]
    medians = search["median_seconds"]
    rows.append(
        (
            "search: 2 workers ≤ 0.6× the time of 1 (issue 13)",
            f"**{x(two)}** ({medians['2_workers']:.2f} s vs {medians['1_worker']:.2f} s, "
            f"{search['trials']} trials)",
            verdict(two <= 0.6),
        )
    )
    rows.append(
        (
            "`mlops train` ≤ 0.6× the naive pipeline",
            f"**{x(training['ratio'])}**",
            verdict(training["ratio"] <= 0.6),
        )
    )
    return table(("goal (issue)", "measured", ""), rows)


def serving_table(data: dict[str, Any]) -> str:
    names = {"mlflow": "mlflow models serve", "ours": "**mlops serve**", "floor": "FastAPI floor"}
    rows = []
    for key, name in names.items():
        m, runs = data["median"][key], data["runs"][key]
        bold = (lambda s: f"**{s}**") if key == "ours" else (lambda s: s)
        rows.append(
            (
                name,
                bold(n(m["rps"])),
                bold(f"{m['p50_ms']:.1f}"),
                bold(f"{m['p99_ms']:.1f}"),
                ", ".join(n(r["rps"], 1 if r["rps"] < 1000 else 0) for r in runs),
                sum(r["errors"] for r in runs),
            )
        )
    return table(("server", "throughput (req/s)", "p50 (ms)", "p99 (ms)", "runs (req/s)", "failed"), rows)


def predict_cpu(data: dict[str, Any]) -> str:
    median = data["median_cpu_us"]
    row = (
        f"`{data['baseline'][:7]}` → `{data['after'][:7]}`",
        f"{median['before']:.0f}",
        f"{median['after']:.0f}",
        x(data["ratio_after_to_before"]),
        data["settings"]["runs"],
        "yes" if data["same_answers"] else f"**no** ({len(data['differences'])} differ)",
    )
    return table(
        ("before → after", "before (µs CPU)", "after (µs CPU)", "ratio", "runs", "same answers"), [row]
    )


def hotswap_table(data: dict[str, Any]) -> str:
    poll = data["settings"]["poll_interval"]
    rows = []
    for key, name in (
        ("ours", f"**mlops serve, 2 workers, {poll} s poll**"),
        ("mlflow", "mlflow models serve, restarted"),
    ):
        runs = data["runs"][key]
        m = median_run(runs, "swap_s")
        swap = f"{m['swap_s']:.2f} s"
        if key == "ours":
            swap = f"**{swap}** (metrics witness {data['median'][key]['metrics_converged_s']:.2f} s)"
        failed = f"{n(m['failed'])} of {n(m['requests'])}"
        rows.append(
            (
                name,
                swap,
                ", ".join(f"{r['swap_s']:.2f}" for r in runs),
                f"**{failed}**" if key == "ours" else failed,
            )
        )
    cost = data["swap_cost"]
    swap = (
        f"\nThe swap itself (`swap_cost`: `ModelManager.check()` after an alias move, without the poll "
        f"wait: resolve, load, smoke test, swap): {cost['check_median_s']:.2f} s, median of "
        f"{len(cost['check_s'])}.\n"
    )
    return table(("", "swap time (median run)", "runs (s)", "failed requests (median run)"), rows) + swap


def coldstart_table(data: dict[str, Any]) -> str:
    names = {
        "cache": "**mlops serve (cache)**",
        "ours": "mlops serve (registry, cache off)",
        "mlflow": "mlflow models serve",
    }
    rows = []
    for key, name in names.items():
        m = data["median"][key]
        ready = f"**{m['ready_s']:.2f} s**" if key == "cache" else f"{m['ready_s']:.2f} s"
        runs = ", ".join(f"{r['ready_s']:.2f}" for r in data["runs"][key])
        ratio = data["ratio_ready_vs_mlflow"].get(key, 1.0)
        rows.append((name, ready, f"{m['first_prediction_s']:.2f} s", x(ratio), runs))
    return table(("server", "ready (median)", "first prediction", "ready / mlflow", "runs (ready, s)"), rows)


def import_profile(data: dict[str, Any]) -> str:
    profile = data["profile"]["importtime"]
    top = list(profile["by_package_s"].items())[:6]
    rows = [(f"`{name}`", f"{seconds:.2f}") for name, seconds in top]
    rows.append(("everything else", f"{profile['total_s'] - sum(s for _, s in top):.2f}"))
    rows.append(
        ("**all imports** (of {:.2f} s to ready)".format(profile["ready_s"]), f"**{profile['total_s']:.2f}**")
    )
    return table(("package (`-X importtime`, from the cache)", "import time (s)"), rows)


def rollouts_table(first: dict[str, Any], second: dict[str, Any]) -> str:
    runs = (first, second)

    def each(fmt: Callable[[dict[str, Any]], str]) -> list[str]:
        return [fmt(run) for run in runs]

    def ratio(mode: str) -> Callable[[dict[str, Any]], str]:
        def cell(run: dict[str, Any]) -> str:
            h = run["http"]
            rps = h["median"]
            return f"**{x(h['throughput_ratio'][mode])}** ({n(rps[mode]['rps'])} vs {n(rps['none']['rps'])})"

        return cell

    def p99(run: dict[str, Any]) -> str:
        return (
            " / ".join(f"{run['http']['median'][m]['p99_ms']:.1f}" for m in ("none", "shadow", "canary"))
            + " ms"
        )

    def cpu_vs(run: dict[str, Any]) -> str:
        return f"{x(run['cpu']['ratio_vs_main_none']['none'])} (vs `{run['cpu']['baseline']}`)"

    def cpu_modes(run: dict[str, Any]) -> str:
        return " / ".join(
            x(run["cpu"]["ratio_vs_main_none"][m] / run["cpu"]["ratio_vs_main_none"]["none"])
            for m in ("shadow", "canary")
        )

    def reach(run: dict[str, Any]) -> str:
        return " / ".join(f"{s['reach_s']:.2f}" for s in run["switch"]["switches"]) + " s"

    def failed(run: dict[str, Any]) -> str:
        return f"{n(run['switch']['failed'])} of {n(run['switch']['requests'])}"

    poll = first["poll_interval_s"]
    goal = first["http"]["goals"]
    rows = [
        ("shadow 100 % / no rollout, req/s", *each(ratio("shadow")), f"≥ {x(goal['shadow'])}"),
        ("canary 10 % / no rollout, req/s", *each(ratio("canary")), f"≥ {x(goal['canary'])}"),
        ("p99 no rollout / shadow / canary", *each(p99), "reported"),
        ("CPU per request: no rollout vs the baseline commit", *each(cpu_vs), "no slowdown"),
        ("CPU per request: shadow / canary vs no rollout", *each(cpu_modes), "—"),
        ("switch reaches every worker: start / ramp / abort", *each(reach), f"≤ poll ({poll:g} s) + 0.1 s"),
        ("failed requests through the switches", *each(failed), "0"),
    ]
    return table(("", "run 1 (`rollout.json`)", "run 2 (`rollout-repeat.json`)", "goal"), rows)


def prediction_log_table(data: dict[str, Any]) -> str:
    names = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
    rows = []
    for setting, v in data["verdict"].items():
        database, shadow = setting.split("/")
        on, off = data["median"][f"{setting}/log-on"], data["median"][f"{setting}/log-off"]
        written = min(v["written_per_served"])
        said = f"**{written:.2f}** ({n(on['written'])})"
        if v.get("scorings_per_served"):
            said += f", scorings {min(v['scorings_per_served']):.2f}"
        rows.append(
            (
                f"{names[database]}, {shadow.replace('-', ' ')}",
                said,
                n(sum(v["dropped"])),
                x(v["on_vs_off_rps_median"]),
                f"{on['worker_cpu_us']:.0f} / {off['worker_cpu_us']:.0f} µs",
                f"{v['shipper_cpu_us_per_answer_median']:.0f} µs",
            )
        )
    header = (
        "setting",
        "written / served (rows)",
        "dropped",
        "on / off req/s (median)",
        "worker CPU per answer, on / off",
        "shipper CPU per answer",
    )
    return table(header, rows)


def training_table(data: dict[str, Any]) -> str:
    rows = [
        (name, f"{data['medians_s'][name]:.2f}", ", ".join(f"{t:.2f}" for t in data["times_s"][name]))
        for name in data["medians_s"]
    ]
    return (
        table(("pipeline", "median wall time (s)", "runs (s)"), rows)
        + f"\nRatio {data['ratio']:.2f} (goal ≤ 0.6).\n"
    )


def training_profile(data: dict[str, Any]) -> str:
    m = data["median"]
    wall = m["wall_s"]
    parts = [
        (
            "before the first step: interpreter, imports, ZenML client and store, compiling the pipeline",
            m["before_first_step_s"],
        )
    ]
    parts += [(f"step `{step}`", seconds) for step, seconds in m["steps_s"].items()]
    parts += [
        ("between steps: ZenML's per-step bookkeeping", m["between_steps_s"]),
        ("after the last step: the run's end, the summary", m["after_last_step_s"]),
    ]
    rows = [(name, f"{seconds:.1f}", pct(seconds / wall)) for name, seconds in parts]
    rows.append(("**wall time**", f"**{wall:.1f}**", "100 %"))
    runs, load, cpus = data["settings"]["runs"], m["load_average_1m"], data["machine"]["cpus"]
    note = f"\nMedians of {runs} run(s); load average {load:.1f} on {cpus} cores at the end of a run.\n"
    return table(("part of `mlops train`", "seconds", "share"), rows) + note


def training_imports(data: dict[str, Any]) -> str:
    m = data["median"]
    top = list(m["imports_s"].items())[:8]
    rows = [(f"`{package}`", f"{seconds:.1f}", pct(seconds / m["wall_s"])) for package, seconds in top]
    rows.append(("everything else", f"{m['imports_total_s'] - sum(s for _, s in top):.1f}", ""))
    rows.append(
        ("**all imports**", f"**{m['imports_total_s']:.1f}**", pct(m["imports_total_s"] / m["wall_s"]))
    )
    return table(("package (`-X importtime`, self time)", "seconds", "share of wall time"), rows)


def batch_table(big: list[dict[str, Any]], small: list[dict[str, Any]]) -> str:
    b, s = max(big, key=lambda r: r["rows"]), max(small, key=lambda r: r["rows"])
    names = {
        "floor": "compute floor: `session.run` on pre-encoded arrays",
        "astype": '`astype(str)` loop (formerly "raw onnxruntime")',
        "local": "local engine (`score_file`)",
        "spark1": "Spark `local[1]`, 1 ORT thread per task",
        "spark2": "Spark `local[2]`, 1 ORT thread per task",
    }

    def cells(row: dict[str, Any], mode: str, rss: bool) -> list[str]:
        if f"{mode}_rows_per_s" not in row:
            return ["—"] * (3 if rss else 2)
        out = [n(row[f"{mode}_rows_per_s"]), f"{row[f'{mode}_cpu_us_per_row']:.2f}"]
        return [*out, n(row[f"{mode}_peak_rss_mb"])] if rss else out

    def size(rows: int) -> str:
        return f"{rows // 1_000_000}M" if rows % 1_000_000 == 0 else n(rows)

    header = (
        "mode",
        f"{size(b['rows'])} rows/s",
        "CPU µs/row",
        "peak RSS (MB)",
        f"{size(s['rows'])} rows/s",
        "CPU µs/row",
    )
    rows = [(name, *cells(b, mode, True), *cells(s, mode, False)) for mode, name in names.items()]
    return table(header, rows)


# ----- docs/reliability.md -----
Cells = tuple[str, str, str]  # requests, errors, other figures


@dataclass(frozen=True)
class Attack:
    """A row of the reliability table: the figures of one test function (all its parameters), the
    keys the row needs (a row whose test did not record them says so instead of guessing), and the
    cells drawn from them."""

    label: str
    test: str  # tests/reliability/FILE.py::FUNCTION
    needs: tuple[str, ...]
    cells: Callable[[list[dict[str, Any]]], Cells]


def _sum(entries: list[dict[str, Any]], key: str) -> int:
    return int(sum(e[key] for e in entries))


def _load(es: list[dict[str, Any]]) -> Cells:
    (e,) = es
    other = (
        f"{n(e['throughput_rps'])} req/s over {e['seconds']:.0f} s, p50 {e['p50_ms']:.1f} ms, "
        f"p99 {e['p99_ms']:.1f} ms (client and 2 workers share 2 cores)"
    )
    return n(e["requests"]), f"**{e['errors']}**", other


def _promotions(es: list[dict[str, Any]]) -> Cells:
    (e,) = es
    other = f"{e['promotions']} promotions; p50 {e['p50_ms']:.1f} ms, p99 {e['p99_ms']:.1f} ms"
    if "max_swap_s" in e:  # recorded since the 2 s hot-swap goal is asserted under load
        other += f"; the slowest swap reached every worker in {e['max_swap_s']:.2f} s"
    return n(e["requests"]), f"**{e['errors']}**", other


def _mlflow(es: list[dict[str, Any]]) -> Cells:
    (e,) = es
    other = (
        f"{n(e['served_while_registry_down'])} served while the registry was out; the hang reported in "
        f"{e['hung_reported_s']:.1f} s, recovery seen {e['recovered_s']:.1f} s after the restart; "
        f"p99 {e['p99_ms']:.1f} ms"
    )
    return n(e["requests"]), f"**{e['errors']}**", other


def _outage(es: list[dict[str, Any]]) -> Cells:
    (e,) = es
    other = (
        f"{n(e['requests_during_outage'])} requests during the outage, spooled "
        f"({n(e['spool_bytes_in_outage'] / 1e6, 1)} MB on disk, RSS +{e['rss_growth_mb']:.1f} MB), "
        f"replayed {e['replayed_after_s']:.1f} s after the database returned; {n(e['dropped'])} dropped, "
        f"{n(e['logged'])} of {n(e['answered'])} answers logged"
    )
    return n(e["requests"]), f"**{e['errors']}**", other


def _lossless(es: list[dict[str, Any]]) -> Cells:
    (e,) = es
    other = (
        f"{n(e['refused'])} refused with 503 + Retry-After; "
        f"{n(e['logged'])} of {n(e['answered'])} answers logged"
    )
    return n(e["requests"]), f"**{n(e['answered'] - e['logged'])}** unlogged 200s", other


def _kills(es: list[dict[str, Any]]) -> Cells:
    (e,) = es
    other = (
        f"{e['kills']} kills ({len(e['steps_covered'])} steps, {e['concurrent_runs']} at a time), "
        f"{e['alias_moves_while_killed']} aliases moved, {e['audit_records']} deaths audited naming their "
        f"step, {e['zenml_runs_marked_failed']} ZenML runs marked failed; the next run: {e['next_run']}"
    )
    return "—", "—", other


def _corrupt(es: list[dict[str, Any]]) -> Cells:
    (e,) = es
    other = f"rejected by {e['workers_rejecting']:.0f} workers, the old version kept serving"
    return n(e["requests"]), f"**{e['errors']}**", other


def _retrain(es: list[dict[str, Any]]) -> Cells:
    (e,) = es
    other = (
        f"{e['retrain_requests']} requests, {e['jobs']} job, {e['new_versions']} new version; "
        f"p99 {e['p99_ms']:.1f} ms while training ran beside the service"
    )
    return n(e["requests"]), f"**{e['errors']}**", other


def _restart(es: list[dict[str, Any]]) -> Cells:
    (e,) = es
    other = (
        f"{e['in_flight_at_sigterm']} in flight at SIGTERM, {n(e['answered'])} answered = "
        f"{n(e['logged'])} logged, {e['lost']} lost, {n(e['refused_while_down'])} refused while down, "
        f"{n(e['after_restart'])} after restart with {e['errors_after_restart']} errors"
    )
    return n(e["requests"]), f"**{e['http_errors'] + e['lost']}**", other


def _fuzz(es: list[dict[str, Any]]) -> Cells:
    statuses: Counter[str] = Counter()
    for e in es:
        statuses.update(e.get("statuses", {}))
    other = f"{max(e['operations'] for e in es)} operations, {len(es)} key configuration(s)"
    if statuses:
        other += "; statuses " + ", ".join(f"{code}: {n(c)}" for code, c in sorted(statuses.items()))
        other += "" if any(code.startswith("5") for code in statuses) else "; no 5xx"
    return f"{n(_sum(es, 'cases'))} cases", f"**{_sum(es, 'failures')}** failures", other


def _stateful(es: list[dict[str, Any]]) -> Cells:
    transitions = {t for e in es for t in e["transitions"]}
    followed = any(t.startswith("GET /retrain/{job_id} -> 200") for t in transitions)
    other = f"{len(transitions)} distinct transitions; `GET /retrain/{{job_id}}` -> 200 reached: "
    return f"{n(_sum(es, 'steps'))} calls", "**0** failures (asserted)", other + ("yes" if followed else "no")


def _cli(es: list[dict[str, Any]]) -> Cells:
    codes = Counter(e["exit_code"] for e in es)
    said = ", ".join(f"{code} (×{count})" for code, count in sorted(codes.items()))
    other = f"{len({e['command'] for e in es})} commands; exit codes {said}"
    return f"{len(es)} cases", "**0** tracebacks (asserted)", other


def _keys(es: list[dict[str, Any]]) -> Cells:
    (e,) = es
    endpoints = f"{e['mutating_endpoints']} mutating + {e['admin_endpoints']} admin endpoints"
    return (
        endpoints,
        "**0** open",
        "each 401 without a key, 403 with a wrong one; admin routes refuse the predict key",
    )


def _secrets(es: list[dict[str, Any]]) -> Cells:
    (e,) = es
    other = f"{e['secrets']} secrets searched in {e['texts_searched']} bodies, logs and reprs"
    return "—", f"**{e['leaks']}** leaks", other


R = "tests/reliability/"
ATTACKS = (
    Attack(
        "load, 64 connections",
        R + "test_service_load.py::test_load_at_64_connections_has_no_errors",
        ("requests", "errors", "throughput_rps", "p50_ms", "p99_ms", "seconds"),
        _load,
    ),
    Attack(
        "promotions under load",
        R + "test_service_load.py::test_three_promotions_under_load_fail_no_request",
        ("requests", "errors", "promotions", "p50_ms", "p99_ms"),
        _promotions,
    ),
    Attack(
        "MLflow server hung (SIGSTOP), SIGKILLed, restarted",
        R + "test_service_faults.py::test_mlflow_server_hung_then_killed_while_serving_and_brought_back",
        ("requests", "errors", "served_while_registry_down", "hung_reported_s", "recovered_s", "p99_ms"),
        _mlflow,
    ),
    Attack(
        "prediction-log database stopped 30 s",
        R + "test_prediction_log_outage.py::test_log_database_outage_under_load",
        (
            "requests",
            "errors",
            "requests_during_outage",
            "spool_bytes_in_outage",
            "rss_growth_mb",
            "replayed_after_s",
            "dropped",
            "answered",
            "logged",
        ),
        _outage,
    ),
    Attack(
        "lossless log, full spool, database down",
        R + "test_prediction_log_outage.py::test_lossless_full_spool_refuses_never_serves_unlogged",
        ("requests", "refused", "answered", "logged"),
        _lossless,
    ),
    Attack(
        "`kill -9` of training at each step",
        R + "test_training_kills.py::test_training_killed_at_every_step_moves_no_alias",
        (
            "kills",
            "steps_covered",
            "concurrent_runs",
            "alias_moves_while_killed",
            "audit_records",
            "zenml_runs_marked_failed",
            "next_run",
        ),
        _kills,
    ),
    Attack(
        "corrupt version moved into the alias",
        R + "test_service_faults.py::test_a_corrupt_version_in_the_alias_is_rejected_by_every_worker",
        ("requests", "errors", "workers_rejecting"),
        _corrupt,
    ),
    Attack(
        "10 concurrent `POST /retrain` under load",
        R + "test_service_faults.py::test_ten_concurrent_retrains_under_load_run_one_job",
        ("requests", "errors", "retrain_requests", "jobs", "new_versions", "p99_ms"),
        _retrain,
    ),
    Attack(
        "restart under load (SIGTERM)",
        R + "test_service_faults.py::test_restart_under_load_drains_requests_and_the_log",
        (
            "requests",
            "http_errors",
            "lost",
            "in_flight_at_sigterm",
            "answered",
            "logged",
            "refused_while_down",
            "after_restart",
            "errors_after_restart",
        ),
        _restart,
    ),
    Attack(
        "schemathesis, in process",
        R + "test_api_fuzz.py::test_generated_requests_in_process",
        ("cases", "failures", "operations"),
        _fuzz,
    ),
    Attack(
        "schemathesis, stateful links",
        R + "test_api_fuzz.py::test_stateful_workflows_in_process",
        ("steps", "transitions"),
        _stateful,
    ),
    Attack(
        "schemathesis, live `mlops serve`",
        R + "test_api_fuzz.py::test_generated_requests_against_mlops_serve",
        ("cases", "failures", "operations"),
        _fuzz,
    ),
    Attack(
        "CLI bad input, in process",
        R + "test_cli_bad_input.py::test_bad_input_in_process",
        ("command", "exit_code"),
        _cli,
    ),
    Attack(
        "CLI bad input, real subprocesses",
        R + "test_cli_bad_input.py::test_bad_input_as_a_subprocess",
        ("command", "exit_code"),
        _cli,
    ),
    Attack(
        "security: keys",
        R + "test_security.py::test_every_mutating_endpoint_refuses_missing_and_wrong_keys",
        ("mutating_endpoints", "admin_endpoints"),
        _keys,
    ),
    Attack(
        "security: secrets",
        R + "test_security.py::test_secrets_never_leak",
        ("leaks", "secrets", "texts_searched"),
        _secrets,
    ),
)


def entries_of(data: dict[str, Any], test: str) -> list[dict[str, Any]]:
    """The figures of ``test`` (a file::function), over all its parameters, in id order."""
    tests = data["tests"]
    return [tests[k] for k in sorted(tests) if k == test or k.startswith(test + "[")]


def reliability_table(data: dict[str, Any]) -> str:
    rows = []
    for attack in ATTACKS:
        found = entries_of(data, attack.test)
        if found and all(key in e for e in found for key in attack.needs):
            rows.append((attack.label, *attack.cells(found)))
        else:
            rows.append((attack.label, "—", "—", "not in this results file: `make reliability` records it"))
    run = "full length (`make reliability`)" if data.get("full") else "short variants (CI)"
    if "commit" in data:
        run += f", commit `{data['commit']}`"
    if "date" in data:
        run += f", {data['date']}"
    return f"Run: {run}.\n\n" + table(("attack", "requests", "errors", "other figures"), rows)


def stale_tests(data: dict[str, Any]) -> list[str]:
    """Test functions with figures in the results file that no table reads (renamed or removed
    since the run): a warning, since the suite must be re-run to replace them."""
    read = {a.test for a in ATTACKS}
    return sorted({k.split("[")[0] for k in data["tests"]} - read)


# ----- docs/tracing.md -----
def tracing_table(data: dict[str, Any]) -> str:
    """CPU per request with tracing off, on and sampled, in process and over HTTP (benchmarks/tracing.py)."""
    inproc, http, median = data["in_process"]["runs"], data["runs"], data["median"]

    def us(value: float) -> str:
        return f"{n(value)} µs"

    def cpu(runs: list[float]) -> str:
        return f"{us(sorted(runs)[len(runs) // 2])} ({spread(runs, n)})"

    def over_http(name: str) -> str:
        values = [r["cpu_us_per_request"] for r in http[name]]
        return f"{us(median[name]['cpu_us_per_request'])} ({spread(values, n)})"

    ratio = data["comparison"]["on_vs_off_throughput"]
    rows = [
        (
            f"before ({data['baseline']})",
            cpu(inproc["before"]),
            over_http("before"),
            f"{n(median['before']['rps'])} req/s",
        ),
        ("**off** (default)", cpu(inproc["off"]), over_http("off"), f"{n(median['off']['rps'])} req/s"),
        (
            "**on**, every request traced",
            cpu(inproc["on"]),
            over_http("on"),
            f"{n(median['on']['rps'])} req/s ({x(ratio)} off)",
        ),
    ]
    if "on_sampled_10pct" in inproc:
        rows.append(
            ("on, 10 % sampled (`parentbased_traceidratio`, 0.1)", cpu(inproc["on_sampled_10pct"]), "–", "–")
        )
    runs_in, runs_http = len(inproc["off"]), data["settings"]["runs"]
    header = (
        "",
        f"CPU per request, in process (ASGI app called directly; median of {runs_in}, range)",
        f"CPU per request over HTTP (`mlops serve` under {data['settings']['connections']} connections; "
        f"median of {runs_http}, range)",
        "throughput over HTTP (median)",
    )
    return table(header, rows)


TABLES = (
    Table(
        "goals",
        "docs/benchmarks.md",
        (
            "serving-iris.json",
            "hotswap-iris.json",
            "coldstart-iris.json",
            "rollout.json",
            "rollout-repeat.json",
            "prediction_log.json",
            "batch_engines-readmission-10m.json",
            "search.json",
            "training.json",
        ),
        goals,
    ),
    Table("serving", "docs/benchmarks.md", ("serving-iris.json",), serving_table),
    Table("predict-cpu", "docs/benchmarks.md", ("predict_cpu.json",), predict_cpu),
    Table("hotswap", "docs/benchmarks.md", ("hotswap-iris.json",), hotswap_table),
    Table("coldstart", "docs/benchmarks.md", ("coldstart-iris.json",), coldstart_table),
    Table("import-profile", "docs/benchmarks.md", ("coldstart-iris.json",), import_profile),
    Table("rollouts", "docs/benchmarks.md", ("rollout.json", "rollout-repeat.json"), rollouts_table),
    Table("prediction-log", "docs/benchmarks.md", ("prediction_log.json",), prediction_log_table),
    Table("training", "docs/benchmarks.md", ("training.json",), training_table),
    Table("training-profile", "docs/benchmarks.md", ("training_profile.json",), training_profile),
    Table("training-imports", "docs/benchmarks.md", ("training_profile.json",), training_imports),
    Table(
        "batch",
        "docs/benchmarks.md",
        ("batch_engines-readmission-10m.json", "batch_engines-readmission.json"),
        batch_table,
    ),
    Table("reliability", "docs/reliability.md", ("reliability.json",), reliability_table),
    Table("tracing", "docs/tracing.md", ("tracing.json",), tracing_table),
)


# ----- the rewrite -----
def block(t: Table, results: Path) -> str:
    """The generated text of ``t``: its table, then the results files it came from."""
    data = [json.loads((results / source).read_text()) for source in t.sources]
    named = ", ".join(f"`benchmarks/results/{source}`" for source in t.sources)
    return t.render(*data).rstrip("\n") + f"\n\nGenerated from {named}.\n"


def rewrite(doc: str, text: str, results: Path, tables: Iterable[Table] = TABLES) -> str:
    """``text`` (the content of ``doc``) with every generated block redrawn. A block whose name no
    table defines, or a table whose block is missing from its doc, is an error: nothing is skipped."""
    mine = {t.name: t for t in tables if t.doc == doc}
    seen: set[str] = set()

    def redraw(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in mine:
            raise SystemExit(f"{doc}: generated block {name!r} is no table of benchmarks/tables.py")
        seen.add(name)
        return f"{START.format(name=name)}\n{block(mine[name], results)}{END}"

    out = BLOCK.sub(redraw, text)
    if missing := sorted(set(mine) - seen):
        raise SystemExit(f"{doc}: no generated block for {', '.join(missing)}")
    return out


def docs(tables: Iterable[Table] = TABLES) -> list[str]:
    return sorted({t.doc for t in tables})


def differences(results: Path = RESULTS, root: Path = ROOT) -> dict[str, str]:
    """Doc -> unified diff between the committed text and the text regenerated from ``results``."""
    out = {}
    for doc in docs():
        text = (root / doc).read_text()
        new = rewrite(doc, text, results)
        if new != text:
            diff = difflib.unified_diff(
                text.splitlines(keepends=True), new.splitlines(keepends=True), doc, f"{doc} (regenerated)"
            )
            out[doc] = "".join(diff)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 with a diff if a table differs from its JSON"
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    reliability = json.loads((args.results / "reliability.json").read_text())
    if stale := stale_tests(reliability):
        print(f"reliability.json holds figures of tests no table reads: {', '.join(stale)}", file=sys.stderr)
    if args.check:
        if diffs := differences(args.results):
            sys.stdout.write("".join(diffs.values()))
            print(f"\nstale tables in {', '.join(diffs)}: run `python benchmarks/tables.py`", file=sys.stderr)
            sys.exit(1)
        print(f"{len(TABLES)} tables in {', '.join(docs())} match their JSON")
        return
    texts = {doc: (ROOT / doc).read_text() for doc in docs()}
    new = {doc: rewrite(doc, text, args.results) for doc, text in texts.items()}  # all, then write
    for doc, text in new.items():
        if text != texts[doc]:
            (ROOT / doc).write_text(text)
        print(f"{doc}: {'rewritten' if text != texts[doc] else 'unchanged'}")


if __name__ == "__main__":
    main()
