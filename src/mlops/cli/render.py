"""Everything the command line shows: JSON documents with ``--json``, rich text and tables otherwise.

Commands compute a result and hand it here; with ``--json`` only the JSON document reaches stdout
(``main`` sends library chatter to stderr).
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

# The long commands' step display (``mlops.cli.progress``), drawn from here like every output.
from mlops.cli.progress import PipelineProgress as PipelineProgress
from mlops.cli.progress import pipeline_progress as pipeline_progress

if TYPE_CHECKING:
    from collections.abc import Callable

    from mlops.stores.audit import AuditEvent, VerifyReport

console = Console()
err = Console(stderr=True)
json_out = sys.stdout  # set by ``main``: with --json, stdout carries only the JSON document


def show(value: Any, as_json: bool, human: Callable[[Any], None], *, document: Any = None) -> None:
    """``value`` drawn by ``human``; with ``as_json``, ``document`` (default: ``value``) as JSON on stdout."""
    if as_json:
        json_out.write(json.dumps(value if document is None else document, indent=2, default=str) + "\n")
        json_out.flush()
    else:
        human(value)


def training(project: str) -> Callable[[dict[str, Any]], None]:
    return lambda result: _training(project, result)


def _training(project: str, result: dict[str, Any]) -> None:
    model, promotion = result.get("model", {}), result.get("promotion", {})
    table = Table(title=f"{project}: run {result['zenml_run_name']}", show_header=False)
    table.add_row("model", f"{model.get('name')} v{model.get('version')}")
    table.add_row("mlflow run", str(model.get("run_id")))
    table.add_row("metrics", ", ".join(f"{k}={v:.4f}" for k, v in result.get("metrics", {}).items()))
    parity = result.get("onnx_parity", {})
    table.add_row(
        "runtime", "onnx (parity ok)" if parity.get("ok") else f"native (onnx parity failed {parity})"
    )
    table.add_row(
        "decision",
        f"[bold]{promotion.get('outcome')}[/] → {promotion.get('alias')}: {promotion.get('reason')}",
    )
    evidence = promotion.get("evidence") or {}
    if evidence:
        interval = promotion.get("interval") or {}
        table.add_row(
            "evidence",
            f"{evidence.get('source')} slice {str(evidence.get('fingerprint', ''))[:12]} "
            f"({evidence.get('rows')} rows, epoch {evidence.get('epoch')})"
            + (f"; {interval.get('resamples')} paired bootstrap resamples" if interval else ""),
        )
    console.print(table)


def versions(model_name: str) -> Callable[[list[dict[str, Any]]], None]:
    def draw(rows: list[dict[str, Any]]) -> None:
        if not rows:
            console.print(f"No versions of {model_name!r} yet. Run `mlops train`.")
            return
        primary = rows[-1]["tags"].get("primary_metric", "")
        table = Table(title=model_name)
        for col in (
            "version",
            "aliases",
            primary or "metric",
            "live accuracy",
            "runtime",
            "decision",
            "created",
        ):
            table.add_column(col)
        for v in rows:
            table.add_row(
                v["version"],
                ", ".join(v["aliases"]),
                f"{v['metrics'].get(primary, float('nan')):.4f}",
                _live(v.get("live")),
                v["runtime"],
                " ".join(filter(None, [v["promotion"], v["tags"].get("promotion.interval", "")])),
                v["created_at"][:19],
            )
        console.print(table)

    return draw


def _live(live: dict[str, Any] | None) -> str:
    """Live accuracy beside its label count, e.g. "0.93 (n=41)"; "-" before any label."""
    if not live or not live.get("labelled"):
        return "-"
    return f"{live['accuracy']:.2f} (n={live['labelled']})"


def prediction(row: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    return lambda result: _prediction(row, result)


def _prediction(row: dict[str, Any], result: dict[str, Any]) -> None:
    console.print(f"[bold]{result['model_uri']}[/] (version {result['model_version']}, {result['runtime']})")
    console.print(f"input: {json.dumps(row)}")
    console.print(f"prediction: [bold green]{result['prediction']}[/] ({result['label']})")
    console.print("probabilities: " + ", ".join(f"{k}={v:.3f}" for k, v in result["probabilities"].items()))


def promotion(result: dict[str, Any]) -> None:
    details = result.get("details") or {}
    evidence = details.get("evidence") or {}
    console.print(
        f"[green]{result['alias']}[/]: {result['from_version'] or '-'} → {result['to_version']} "
        f"({result['reason']})"
    )
    if evidence:
        console.print(
            f"evidence: {evidence.get('source')} rows ({evidence.get('rows')}), test {details.get('test')}"
        )


def rollback(result: dict[str, Any]) -> None:
    console.print(
        f"[yellow]{result['alias']}[/] rolled back: {result['from_version']} → {result['to_version']}"
    )


_DECISION_COLORS = {
    "promoted": "green",
    "kept": "yellow",
    "rejected": "red",
    "refused": "red",
    "failed": "red",
}


def audit(model_name: str) -> Callable[[list[AuditEvent]], None]:
    return lambda events: _audit(model_name, events)


def _audit(model_name: str, events: list[AuditEvent]) -> None:
    console.print(f"[bold]audit: {model_name}[/] ({len(events)} events)")
    for e in events:
        color = _DECISION_COLORS.get(e.decision, "white")
        mark = " [yellow](spooled)[/]" if e.spooled else ""
        console.print(
            f"#{e.seq or e.id} {e.at:%Y-%m-%d %H:%M:%S} [dim]{e.actor}[/] {e.action} {e.alias or ''} "
            f"{e.from_version or '-'}→{e.to_version or '-'} [{color}]{e.decision}[/]: {e.reason}{mark}",
            highlight=False,
        )


def audit_verify(report: VerifyReport) -> None:
    if report.ok:
        console.print(
            f"[green]audit log intact[/]: {report.rows} rows, head seq {report.head_seq} "
            f"({report.head_hash[:12]}…), anchor signature valid",
            highlight=False,
        )
    else:
        console.print(
            f"[bold red]audit log tampered[/] at seq {report.broken_seq}: {report.reason} "
            f"({report.rows} rows checked)",
            highlight=False,
        )


def status(info: dict[str, Any]) -> None:
    table = Table(show_header=False, title="mlops status")
    for key, value in info.items():
        table.add_row(key, json.dumps(value) if isinstance(value, dict) else str(value))
    console.print(table)


def batch(result: dict[str, Any]) -> None:
    console.print(
        f"[green]{result['rows']:,}[/] rows scored by {result['model_name']} v{result['model_version']} "
        f"({result['runtime']}) in {result['seconds']:.1f} s → {result['output']}"
    )
    console.print("by label: " + ", ".join(f"{k}={v:,}" for k, v in result["predictions_by_label"].items()))
    if result.get("rejected"):  # kept unscored in the output, with their reasons in `rejected`
        reasons = ", ".join(f"{k}={v:,}" for k, v in result["rejected_by_reason"].items())
        console.print(f"[yellow]rejected[/]: {result['rejected']:,} rows ({reasons})")


def drift(result: dict[str, Any]) -> None:
    verdict = "[red]drift detected[/]" if result["detected"] else "[green]no drift[/]"
    console.print(
        f"{verdict}: {result['share']:.0%} of features drifted over {result['rows']:,} rows "
        f"(threshold {result['threshold_share']:.0%}) — report {result['report_path']}"
    )
    drifted = [n for n, f in result["features"].items() if f["drifted"]]
    if drifted:
        console.print("drifted: " + ", ".join(drifted))


def lineage(chain: dict[str, Any]) -> None:
    for link, value in chain.items():
        ok = value.get("resolved", True) if isinstance(value, dict) else True
        mark = "[green]✓[/]" if ok else "[red]✗[/]"
        console.print(f"{mark} [bold]{link}[/]: {json.dumps(value, default=str)}", highlight=False)


def reproduction(result: dict[str, Any]) -> None:
    verdict = "[green]reproduced[/]" if result["match"] else "[red]NOT reproduced[/]"
    console.print(
        f"version {result['version']}: {verdict} (max |Δ| = {result['max_abs_diff']:.2e}, "
        f"dataset hash matches: {result['dataset_hash_matches']})"
    )


def stack(report: dict[str, Any]) -> None:
    console.print(f"stack [bold]{report['stack']}[/]: {report['status']}")
    for kind in ("secrets", "components"):
        for name, status in report[kind].items():
            console.print(f"  {kind[:-1]} {name}: {status}")


def migrations(report: list[dict[str, Any]]) -> None:
    for u in report:
        before, after = ", ".join(u["before"]) or "empty", ", ".join(u["after"])
        state = f"{before} → {after}" if u["changed"] else f"up to date ({after})"
        console.print(f"{' + '.join(u['databases'])} [dim]{u['url']}[/]: {state}", highlight=False)
