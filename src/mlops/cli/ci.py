"""`mlops ci`: what the GitHub workflows need beyond training and promoting, as plain commands.

- ``summary``: a training result (``mlops train --json``) as Markdown for ``$GITHUB_STEP_SUMMARY``:
  the pull-request job reports what merging would do (metrics, the decision, its interval) instead
  of moving a shared alias.
- ``approver``: the reviewer who approved the protected environment, from the run's approvals
  (``gh api .../actions/runs/{run_id}/approvals``), for ``mlops promote --approver``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from mlops.cli import render
from mlops.cli.base import app
from mlops.errors import UsageError

ci_app = typer.Typer(help="Helpers of the GitHub workflows: job summaries, the environment's approver.")
app.add_typer(ci_app, name="ci", no_args_is_help=True)


@ci_app.command("summary")
def ci_summary(
    result: Annotated[Path, typer.Argument(help="The output of `mlops train --json`.")],
    title: Annotated[str, typer.Option(help="The summary's heading.")] = "Training",
    note: Annotated[str, typer.Option(help="A line under the heading (e.g. where the run trained).")] = "",
) -> None:
    """Print a training result as Markdown (append it to $GITHUB_STEP_SUMMARY)."""
    text = result.read_text() if result.is_file() else ""
    if not text.strip():  # the training step failed before printing its result
        render.json_out.write(f"## {title}\n\nNo result: training failed, see the training step's log.\n")
        render.json_out.flush()
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{result} is not the JSON of `mlops train --json`: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{result} is not the JSON of `mlops train --json` (not an object)")
    render.json_out.write(training_markdown(data, title=title, note=note))
    render.json_out.flush()


@ci_app.command("approver")
def ci_approver(
    approvals: Annotated[Path, typer.Argument(help="The run's approvals (gh api .../approvals > FILE).")],
    environment: Annotated[str, typer.Option(help="The protected environment whose reviewer approved.")],
) -> None:
    """Print who approved ENVIRONMENT in this workflow run; fails when nobody did (or one rejected)."""
    from mlops.governance.approvals import approver_from_file

    render.json_out.write(approver_from_file(approvals, environment) + "\n")
    render.json_out.flush()


def training_markdown(result: dict[str, Any], *, title: str, note: str = "") -> str:
    """The decision first (what a reviewer asks), then its evidence, then the run's identity."""
    model, promotion = result.get("model") or {}, result.get("promotion") or {}
    lines = [f"## {title}", "", *([note, ""] if note else [])]
    outcome, alias = promotion.get("outcome", "none"), promotion.get("alias") or "-"
    lines.append(f"**Decision: {outcome}** → `{alias}`: {promotion.get('reason', '')}")
    if isinstance(promotion.get("interval"), dict):
        lines += ["", _interval(promotion["interval"], promotion.get("test"))]
    scores = {k: promotion.get(f"{k}_score") for k in ("challenger", "champion")}
    if any(v is not None for v in scores.values()):
        lines += ["", " · ".join(f"{k} {_number(v)}" for k, v in scores.items())]
    metrics = result.get("metrics") or {}
    if metrics:
        lines += ["", "| metric | value |", "|---|---|"]
        lines += [f"| {name} | {_number(value)} |" for name, value in sorted(metrics.items())]
    identity = f"Model `{model.get('name', '?')}` v{model.get('version', '?')}"
    identity += f" · MLflow run `{model.get('run_id', '?')}`"
    identity += f" · ZenML run `{result.get('zenml_run_name', '?')}` ({result.get('status', '?')})"
    return "\n".join([*lines, "", identity, ""])


def _interval(interval: dict[str, Any], test: Any) -> str:
    """``+0.0120, 95% interval [-0.0040, +0.0270]`` with how it was computed."""
    nan = float("nan")
    text = (
        f"{interval.get('metric', 'primary metric')} difference (challenger - champion): "
        f"{interval.get('estimate', nan):+.4f}, {interval.get('level', 0.95):.0%} interval "
        f"[{interval.get('lo', nan):+.4f}, {interval.get('hi', nan):+.4f}]; "
        f"{interval.get('resamples', '?')} paired bootstrap resamples of {interval.get('n', '?')} rows"
    )
    return f"{text}; test: {test}" if test else text


def _number(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.4f}"
    return str(value) if value is not None else "-"
