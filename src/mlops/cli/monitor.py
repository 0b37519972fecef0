"""`mlops monitor`: the monitoring loop. Every pass runs the drift pipeline on the latest window of
the prediction log against the served version's training data, then the policy: drift → alert →
retrain job → the new version in shadow (``mlops.monitoring.loop``; docs/monitoring.md).

``--every`` is the embedded default's foreground convenience; in server mode the schedule belongs to
the workflow runner or a Kubernetes CronJob, which run ``mlops monitor --once``.
"""

from __future__ import annotations

import signal
import threading
from typing import Annotated, Any

import typer

from mlops.cli import render
from mlops.cli.base import JsonOpt, ProjectOpt, app, require_alias, settings_for
from mlops.errors import MlopsError


@app.command()
def monitor(
    every: Annotated[str, typer.Option(help="Time between passes: 30s, 10m, 1h.")] = "10m",
    once: Annotated[bool, typer.Option(help="One pass, then exit (cron, CI, a CronJob).")] = False,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Watch the prediction log for drift: alert, retrain and put the retrained version in shadow
    (promotion stays with `mlops rollout`). Ctrl-C or SIGTERM stops between passes."""
    from mlops.monitoring.loop import parse_duration, run_pass

    interval = parse_duration(every)  # a bad duration is refused before anything starts
    settings, name = settings_for(project)
    from mlops.projects import get_project

    spec = get_project(name)

    def check() -> dict[str, Any]:
        from mlops.runner import run_monitoring

        alias = settings.serving_alias
        require_alias(settings, name, alias)
        # the drift pipeline's steps as they run; library lines to the run's log file (--verbose: shown)
        with render.pipeline_progress(
            settings, f"monitoring {name}@{alias}", command="monitor", as_json=as_json
        ):
            return run_monitoring(settings, name, alias=alias, source=None, window=settings.monitor_window)

    def one_pass() -> dict[str, Any]:
        return run_pass(settings, spec, check)

    if once:
        render.show(one_pass(), as_json, _passed)
        return
    from mlops.monitoring.loop import every as loop

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda *_: stop.set())
    if not as_json:
        render.console.print(f"monitoring {name} every {every} (Ctrl-C stops)", highlight=False)

    def shown(result: dict[str, Any] | MlopsError) -> None:
        if isinstance(result, MlopsError):
            render.err.print(f"[bold red]pass failed:[/] {result}", highlight=False)
            return
        render.show(result, as_json, _passed)

    loop(interval, one_pass, stop, shown)


def _passed(result: dict[str, Any]) -> None:
    at = result["at"][:19].replace("T", " ")
    follow = result.get("follow_up")
    if follow and follow.get("action") not in (None, "done"):
        line = f"retrain job {follow['job_id']}: {follow['state']}"
        if follow["action"] == "shadow":
            r = follow["rollout"]
            line += f" → v{r['candidate']} in shadow beside v{r['baseline']} (rollout {r['id']})"
        elif follow["action"] in ("skipped", "refused"):
            line += f" → no shadow: {follow.get('reason') or '; '.join(follow.get('reasons', []))}"
        render.console.print(f"{at} {line}", highlight=False)
    action = result.get("action")
    colour = {"none": "green", "wait": "dim", "cooldown": "yellow"}.get(str(action), "red")
    render.console.print(f"{at} [{colour}]{action}[/]: {result.get('reason', '')}", highlight=False)
    episode = result.get("episode") or {}
    if episode.get("job_id"):
        verb = "started" if episode["created"] else "joined"
        render.console.print(
            f"{at} retrain job {episode['job_id']} {verb} ({episode['state']}); alert: {episode['alert']}",
            highlight=False,
        )
