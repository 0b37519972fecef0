"""`mlops rollout`: try a candidate on live traffic (shadow or canary), ramp it, read its online
evidence, promote it (governed) or abort it, and run the guard outside a service.

The decisions are ``mlops.governance.rollout``'s; these commands parse, call and draw. Bad input is
a usage error (exit 2); a refusal exits 5 with its reasons; a registry or store outage exits 75.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mlops.cli import render
from mlops.cli.base import JsonOpt, ProjectOpt, app, settings_for

rollout_app = typer.Typer(
    help="Progressive delivery: shadow and canary rollouts of a candidate version (docs/rollouts.md).",
    no_args_is_help=True,
)
app.add_typer(rollout_app, name="rollout")

ReasonOpt = Annotated[str, typer.Option(help="Why (recorded in the audit log).")]


def _spec(name: str) -> Any:
    from mlops.projects import get_project

    return get_project(name)


@rollout_app.command("start")
def start(
    version: Annotated[str, typer.Argument(help="The candidate version (registered, gates passed).")],
    mode: Annotated[
        str, typer.Option(help="shadow: scored beside production, answers no one; canary: answers a share.")
    ] = "shadow",
    percent: Annotated[
        float | None,
        typer.Option(help="Share in percent: of requests (shadow, default 100) or routing keys (canary)."),
    ] = None,
    reason: ReasonOpt = "",
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Start a rollout of VERSION beside production: sets the `candidate` alias and the rollout record
    that every worker follows on its next poll (audited as rollout.start)."""
    settings, name = settings_for(project)
    from mlops.governance import rollout

    result = rollout.start(
        settings, _spec(name), version, mode, percent, settings.who, reason or f"{mode} rollout"
    )
    render.show(result, as_json, _started)


@rollout_app.command("ramp")
def ramp(
    percent: Annotated[
        float | None, typer.Option(help="The new share (default: the next of MLOPS_ROLLOUT_STEPS).")
    ] = None,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Raise a canary's share, once the current step has its evidence (requests, budgets, accuracy)."""
    settings, name = settings_for(project)
    from mlops.governance import rollout

    result = rollout.ramp(settings, _spec(name), percent, actor=settings.who)
    render.show(result, as_json, _ramped)


@rollout_app.command("status")
def status(project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """The active rollout and its online evidence per version (also GET /rollout on the service)."""
    settings, name = settings_for(project, configure=False)
    from mlops.governance import rollout

    render.show(rollout.status(settings, name), as_json, _status)


@rollout_app.command("promote")
def promote(
    reason: ReasonOpt = "",
    approver: Annotated[str | None, typer.Option(help="Who approves (MLOPS_APPROVERS).")] = None,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Promote the candidate to production when its evidence clears every budget (refused with
    reasons otherwise): the same compare-and-set and audit as every promotion."""
    settings, name = settings_for(project)
    from mlops.governance import rollout

    result = rollout.promote(settings, _spec(name), settings.who, reason, approver)
    render.show(result, as_json, _ended("promoted to production"))


@rollout_app.command("abort")
def abort(reason: ReasonOpt = "", project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """End the active rollout: every worker goes back to production only on its next poll."""
    settings, name = settings_for(project)
    from mlops.governance import rollout

    result = rollout.abort(settings, name, settings.who, reason)
    render.show(result, as_json, _ended("aborted"))


@rollout_app.command("guard")
def guard(
    once: Annotated[bool, typer.Option(help="One round, then exit.")] = False,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The guard as a foreground loop (server mode): takes the guard lease when free and ends a canary
    that breaches its budgets. Every service worker runs the same guard; one leader acts."""
    settings, name = settings_for(project)
    from mlops.serving.guard import run

    done = run(settings, name, once=once)
    render.show(done, as_json, _guarded)


# ----- drawing -----
def _started(result: dict[str, Any]) -> None:
    r = result["rollout"]
    render.console.print(
        f"[green]rollout {r['id']}[/]: v{r['candidate']} in {r['mode']} mode on {r['percent']:g} % "
        f"beside production v{r['baseline']} (candidate alias set; workers follow on their next poll)"
    )


def _ramped(result: dict[str, Any]) -> None:
    r = result["rollout"]
    render.console.print(f"[green]rollout {r['id']}[/]: v{r['candidate']} now on {r['percent']:g} % of keys")


def _ended(what: str) -> Any:
    def draw(result: dict[str, Any]) -> None:
        r = result["rollout"]
        render.console.print(
            f"[yellow]rollout {r['id']}[/] of v{r['candidate']} {what} "
            f"(candidate alias: {result['candidate_alias']})"
        )

    return draw


def _guarded(done: list[dict[str, Any]]) -> None:
    if not done:
        render.console.print("guard: nothing to roll back")
    for d in done:
        render.console.print(f"[red]rolled back[/] rollout {d['rollout']['id']}: {d['reason']}")


def _fmt(value: Any, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def _status(report: dict[str, Any]) -> None:
    from rich.table import Table

    r = report["rollout"]
    if r is None:
        render.console.print(
            f"No rollout of {report['project']!r} yet. Start one with `mlops rollout start`."
        )
    elif not report["active"]:
        render.console.print(
            f"No active rollout; the last one (v{r['candidate']}, {r['mode']}) ended {r['state']}."
        )
    else:
        ev = report["evidence"]
        render.console.print(
            f"[bold]rollout {r['id']}[/]: v{r['candidate']} in {r['mode']} mode on {r['percent']:g} % beside "
            f"production v{r['baseline']} (since {r['started_at'][:19]}, by {r['actor']})"
        )
        table = Table()
        for col in ("version", "requests", "error rate", "p50 ms", "p99 ms", "live accuracy", "labels"):
            table.add_column(col)
        for v in ev["versions"]:
            table.add_row(
                v["version"],
                str(v["requests"]),
                _fmt(v["error_rate"]),
                _fmt(v["latency_ms"]["p50"], ".1f"),
                _fmt(v["latency_ms"]["p99"], ".1f"),
                _fmt(v["live"]["accuracy"]),
                str(v["live"]["labelled"]),
            )
        render.console.print(table)
        if ev["agreement"]:
            render.console.print(
                f"agreement with production: {_fmt(ev['agreement']['rate'])} of {ev['agreement']['compared']}"
            )
        diff = ev["difference"]
        if diff:
            render.console.print(
                f"live accuracy difference ({diff['method']}): {diff['estimate']:+.4f} "
                f"[{diff['level']:.0%} CI {diff['lo']:+.4f}, {diff['hi']:+.4f}]"
            )
        look = ev["look"]
        every = look["schedule"][0]
        render.console.print(
            f"live accuracy judged at fixed looks every {every} labels (level {look['level']:.3f}): "
            f"{look['labelled']} labels, latest look {look['look'] or '-'}"
        )
        drift = ev["drift"]
        render.console.print(f"score drift: psi {_fmt(drift['psi'])}, ks {_fmt(drift['ks'])}")
    incident = report.get("last_incident")
    if incident:
        render.console.print(
            f"[red]last incident[/]: rollout {incident['rollout']} (v{incident['candidate']}) rolled back "
            f"{incident.get('ended_at', '')[:19]}: {incident.get('reason', incident.get('breach'))}"
        )
