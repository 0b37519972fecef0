"""The `mlops` Typer app and what every command shares: options, settings, the error boundary.

``MlopsError`` becomes its message and exit code here (``_Commands``) and nowhere else; output of
every kind is drawn by ``mlops.cli.render``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mlops.cli import progress, render
from mlops.errors import MlopsError, NotFound
from mlops.settings import Settings, get_settings


class _Commands(typer.core.TyperGroup):
    """Turns ``MlopsError`` into its message and exit code, for `mlops` and in-process runners alike."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context
        try:
            return super().invoke(ctx)
        except MlopsError as exc:
            render.err.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    cls=_Commands,
    name="mlops",
    help="Train, register, promote, serve and govern ML models (ZenML + MLflow + FastAPI).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from mlops import __version__

        render.console.print(f"mlops {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version.")
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Show ZenML's and MLflow's own output (INFO) as commands run; MLOPS_LOG_LEVEL sets "
            "another level. Without either it goes to a log file in the state folder.",
        ),
    ] = False,
) -> None:
    """Train, register, promote, serve and govern ML models (ZenML + MLflow + FastAPI)."""
    progress.verbose = verbose


ProjectOpt = Annotated[
    str | None, typer.Option("--project", "-p", help="Use case (default: MLOPS_PROJECT or iris).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def settings_for(project: str | None, *, configure: bool = True) -> tuple[Settings, str]:
    """The settings and the validated project name; ``configure`` (every command that reaches ZenML or
    MLflow) points those libraries at the state folder first: the CLI's one ``configure_libraries``."""
    settings = get_settings()
    name = project or settings.project
    if configure:
        from mlops.configure import configure_libraries

        configure_libraries(settings)
    from mlops.projects import get_project

    get_project(name)  # validates the name with a helpful message
    return settings, name


def require_alias(settings: Settings, project: str, alias: str) -> None:
    """Refuse before a pipeline starts: a step failing on it would print ZenML's traceback."""
    from mlops.registry import Registry

    registry = Registry(settings, project)
    if registry.alias_version(alias) is None:
        raise NotFound(f"no model of {registry.name!r} holds alias {alias!r}", hint="run `mlops train` first")


def quiet_libraries() -> None:
    """The libraries' loggers at the level --verbose / MLOPS_LOG_LEVEL choose (WARNING by default),
    for commands that use them without a progress display (``render.pipeline_progress`` does this
    itself)."""
    level, _ = progress.library_level(get_settings())
    progress.apply_library_levels(level)
