"""Batch stage: resolve the alias once, then score the input into Parquet on the chosen engine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from zenml import get_step_context, log_metadata, step

from mlops.errors import NotFound, UsageError
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
    engine: str = "",
) -> tuple[Annotated[Path, "batch_predictions"], Annotated[dict[str, Any], "batch_summary"]]:
    """Scores on ``engine`` ("local": chunks in this process; "spark": a session on
    ``spark_master`` started here, one per run; empty: ``settings.batch_engine``). The Parquet
    output is also stored as a versioned artifact."""
    from mlops import runtime

    settings = Settings.from_step_parameters(run_settings)
    engine = engine or settings.batch_engine
    if engine not in ("local", "spark"):
        raise UsageError(f"unknown batch engine {engine!r}", hint="use local or spark")
    model = runtime.load(settings, project, model_version)
    run_id = str(get_step_context().pipeline_run.id)
    if engine == "spark":
        result = _score_on_spark(settings, model, Path(input_path), Path(output_path), chunk_rows, run_id)
    else:
        result = _score_locally(model, Path(input_path), Path(output_path), chunk_rows, run_id)
    summary = result.as_dict()
    log_metadata({"batch": summary})
    return Path(result.output), summary


def _score_locally(model: Any, source: Path, output: Path, chunk_rows: int, run_id: str) -> Any:
    # The rows' progress is the CLI's (mlops.cli.progress reads the per-chunk records of score_file).
    from mlops.batch import score_file

    return score_file(model, source, output, chunk_rows=chunk_rows, run_id=run_id)


def _score_on_spark(
    settings: Settings, model: Any, source: Path, output: Path, chunk_rows: int, run_id: str
) -> Any:
    """One Spark session for the run (start-up costs seconds), stopped when the job is done, unless
    the process already had one (a notebook, a test): that one is the caller's to stop."""
    from mlops.batch import spark

    started = spark.active_session() is None
    session = spark.session(settings)
    try:
        return spark.score_file(model, source, output, spark=session, chunk_rows=chunk_rows, run_id=run_id)
    finally:
        if started:
            session.stop()
