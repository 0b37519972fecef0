"""Commands that run or set up the system: serve, demo, ZenML stacks, the project's databases."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from mlops.cli import render
from mlops.cli.base import JsonOpt, ProjectOpt, app, quiet_libraries, settings_for
from mlops.cli.models import predict, train
from mlops.errors import UsageError
from mlops.settings import get_settings


@app.command()
def serve(
    project: ProjectOpt = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default MLOPS_HOST, 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default MLOPS_PORT, 8000).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes.")] = 1,
) -> None:
    """Serve the production model over HTTP (FastAPI): /predict, /health, /ready, /metrics, /docs."""
    settings, name = settings_for(project)
    from mlops.serving.server import serve as run

    run(settings, name, host or settings.host, port or settings.port, workers)


@app.command()
def demo(
    project: ProjectOpt = None,
    port: Annotated[int | None, typer.Option(help="Port (default MLOPS_PORT, 8000).")] = None,
    smoke: Annotated[bool, typer.Option(help="Stop after the HTTP prediction (for tests).")] = False,
    train_first: Annotated[
        bool | None,
        typer.Option(
            "--train/--no-train", help="Run the pipeline first (default: only when no production model)."
        ),
    ] = None,
) -> None:
    """Train through the pipeline, predict from the registry, then serve and predict over HTTP."""
    settings, name = settings_for(project)
    from mlops.projects import get_project
    from mlops.registry import Registry

    spec = get_project(name)
    quiet_libraries()  # before the first registry read: a new MLflow database logs its creation
    if train_first is None:
        train_first = Registry(settings, name).alias_version("production") is None
    if train_first:
        train(project=name, as_json=False)
    predict(json.dumps(spec.example), project=name, alias="production", as_json=False)
    from mlops.serving.demo import run_demo

    run_demo(settings, name, port or settings.port, smoke=smoke, console=render.console)


@app.command()
def worker(
    poll: Annotated[
        float, typer.Option(min=0.1, help="Seconds between looks for a queued job when idle.")
    ] = 2.0,
    once: Annotated[bool, typer.Option(help="Stop when no job is queued (a batch or a test).")] = False,
    alive_file: Annotated[
        Path | None, typer.Option(help="A file touched on every pass and heartbeat (for a healthcheck).")
    ] = None,
) -> None:
    """Run retrain jobs: claim the oldest queued one, train on the active ZenML stack, repeat."""
    # The runner of server mode (MLOPS_RUNNER=external: the service only records jobs); one or many,
    # on any host that reaches the control database. A runner that dies is failed after
    # MLOPS_RUNNER_LEASE_S by whoever looks next; SIGTERM fails its running job at once.
    import os
    import sys

    settings = get_settings()
    if settings.runner_heartbeat_s >= settings.runner_lease_s:
        raise UsageError(
            f"MLOPS_RUNNER_HEARTBEAT_S ({settings.runner_heartbeat_s:g}) must be shorter than "
            f"MLOPS_RUNNER_LEASE_S ({settings.runner_lease_s:g}): every job would be reaped while it runs",
            hint="e.g. MLOPS_RUNNER_HEARTBEAT_S=5 MLOPS_RUNNER_LEASE_S=30 (the defaults)",
        )
    argv = [sys.executable, "-m", "mlops.worker", "loop", "--poll", str(poll), *(["--once"] if once else [])]
    if alive_file is not None:
        argv += ["--alive-file", str(alive_file)]
    sys.stdout.flush()
    # the worker entry point replaces this process: SIGTERM reaches the loop directly
    os.execv(sys.executable, argv)  # noqa: S606 - our own interpreter, a fixed argv


stack_app = typer.Typer(help="ZenML stacks from configs/stacks/<env>.yaml.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")


@stack_app.command("apply")
def stack_apply(
    env: Annotated[str, typer.Argument(help="Stack file name: local, staging or production.")],
    activate: Annotated[bool, typer.Option(help="Make it the active stack.")] = False,
    config_dir: Annotated[Path, typer.Option(help="Folder of stack files.")] = Path("configs/stacks"),
    as_json: JsonOpt = False,
) -> None:
    """Register (or update) the stack, its components and secrets; idempotent."""
    from mlops.configure import configure_libraries

    configure_libraries(get_settings())
    import yaml

    from mlops import stacks

    path = stacks.stack_path(env, config_dir)
    try:
        stack = stacks.load(path)
    except (yaml.YAMLError, LookupError, TypeError, AttributeError) as exc:  # malformed, or wrong shape
        raise UsageError(
            f"stack file {path} is not a stack definition: {type(exc).__name__}: {exc}",
            hint="start from configs/stacks/local.yaml (name, components, secrets)",
        ) from None
    render.show(stacks.apply(stack, activate=activate), as_json, render.stack)


db_app = typer.Typer(help="The project's own databases: audit log, prediction log, drift results.")
app.add_typer(db_app, name="db", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(as_json: JsonOpt = False) -> None:
    """Migrate every configured database to the latest schema (idempotent; an init step in compose/k8s)."""
    from mlops.stores.migrate import upgrade_all

    render.show([u.as_dict() for u in upgrade_all(get_settings())], as_json, render.migrations)
