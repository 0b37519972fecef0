"""Batch stage: resolve the alias once, then stream the input through the model into Parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from zenml import get_step_context, log_metadata, step

from mlops.errors import NotFound
from mlops.registry import Registry
from mlops.settings import Settings
from mlops.steps.hooks import run_failed, run_succeeded


@step(enable_cache=False, on_failure=run_failed)
def resolve_model(project: str, alias: str, run_settings: dict[str, Any]) -> Annotated[str, "model_version"]:
    """The version that holds ``alias`` now; the rest of the run uses exactly this version."""
    version = Registry(Settings.from_step_parameters(run_settings), project).alias_version(alias)
    if version is None:
        raise NotFound(f"no model of {project!r} holds alias {alias!r}", hint="train or promote one first")
    log_metadata({"alias": alias, "model_version": version})
    return version


@step(enable_cache=False, on_failure=run_failed, on_success=run_succeeded)
def score_batch(
    model_version: str,
    project: str,
    input_path: str,
    output_path: str,
    chunk_rows: int,
    run_settings: dict[str, Any],
) -> tuple[Annotated[Path, "batch_predictions"], Annotated[dict[str, Any], "batch_summary"]]:
    """Scores in chunks (bounded memory); the Parquet file is also stored as a versioned artifact."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from mlops import runtime
    from mlops.batch import score_file

    model = runtime.load(Settings.from_step_parameters(run_settings), project, model_version)
    run_id = str(get_step_context().pipeline_run.id)
    with Progress(
        TextColumn("scoring"),
        BarColumn(),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task("rows", total=None)
        result = score_file(
            model,
            Path(input_path),
            Path(output_path),
            chunk_rows=chunk_rows,
            run_id=run_id,
            progress=lambda n: bar.advance(task, n),
        )
    summary = result.as_dict()
    log_metadata({"batch": summary})
    return Path(result.output), summary
