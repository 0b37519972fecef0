"""`mlops ui`: the ZenML dashboard and the MLflow UI on the project's own state."""

from __future__ import annotations

from typing import Any

from mlops.cli import render
from mlops.cli.base import JsonOpt, ProjectOpt, app, settings_for
from mlops.errors import MlopsError


@app.command()
def ui(project: ProjectOpt = None, as_json: JsonOpt = False) -> None:
    """Open the dashboards: ZenML's (runs, steps, artifacts, lineage) and MLflow's (versions, aliases).

    Embedded default: starts both on 127.0.0.1 (ports MLOPS_ZENML_DASHBOARD_PORT, MLOPS_MLFLOW_UI_PORT)
    until Ctrl-C, SIGTERM or SIGHUP, which stop both and leave the project's ZenML store configuration
    as it was. Server mode: prints the stack's own URLs. With --json the URLs are one JSON document on
    stdout (then it keeps running).
    """
    settings, name = settings_for(project)
    from mlops.dashboards import running

    try:
        with running(settings, name) as (dashboards, children):
            render.show(dashboards.as_dict(), as_json, _draw)
            if dashboards.mode != "embedded":
                return
            if not as_json:
                render.console.print("[dim]Ctrl-C stops both[/]")
            exited = children.wait()
            raise MlopsError(
                exited.describe(f"exited with code {exited.popen.returncode}"),
                hint="the other one was stopped; start `mlops ui` again",
            )
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP (mlops.processes.Stopped): both are stopped
        if not as_json:
            render.err.print("stopped: ZenML dashboard and MLflow UI")


def _draw(info: dict[str, Any]) -> None:
    where = "started here" if info["mode"] == "embedded" else "the stack's servers"
    render.console.print(f"[bold]Dashboards[/] ({where})", highlight=False)
    rows = [
        ("ZenML dashboard", info["zenml"] or "(not a server: this project's ZenML store is local)"),
        ("  latest run", info.get("zenml_run", "")),
        ("MLflow UI", info["mlflow"] or "(not a server: this project's tracking URI is local)"),
        ("  model", info.get("mlflow_model", "")),
    ]
    for label, value in rows:
        if value:
            render.console.print(f"  {label:<16} {value}", highlight=False, soft_wrap=True)
    for label, path in (info.get("logs") or {}).items():
        render.console.print(f"  [dim]{label} log: {path}[/]", highlight=False, soft_wrap=True)
