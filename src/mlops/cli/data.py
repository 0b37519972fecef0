"""Commands over data: generate rows, score a file, check drift, trace and reproduce a version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mlops.cli import render
from mlops.cli.base import JsonOpt, ProjectOpt, app, quiet_libraries, require_alias, settings_for
from mlops.errors import UsageError


def _check_output(path: Path, suffixes: tuple[str, ...]) -> None:
    """Refuse an output path before the work: a directory would only fail at the final write."""
    if path.suffix.lower() not in suffixes:
        raise UsageError(f"cannot write {path.name}", hint=f"use a {' or '.join(suffixes)} file name")
    if path.is_dir():
        raise UsageError(f"output {path} is a directory", hint=f"pass a file name, e.g. out{suffixes[0]}")


@app.command()
def generate(
    output: Annotated[Path, typer.Option(help="CSV or Parquet file to write (raw schema of the use case).")],
    rows: Annotated[int, typer.Option(min=1, help="Number of rows.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same rows).")] = 0,
    drift: Annotated[bool, typer.Option(help="Shift distributions and add unseen categories.")] = False,
    project: ProjectOpt = None,
) -> None:
    """Write realistic synthetic rows (readmission: the diabetic_data.csv schema), in bounded memory."""
    _, name = settings_for(project, configure=False)
    if name != "readmission":
        raise UsageError(f"no data generator for project {name!r}", hint="use --project readmission")
    _check_output(output, (".csv", ".parquet"))
    from mlops.data.readmission.generator import write

    with render.console.status(f"generating {rows:,} rows…"):
        path = write(output, rows, seed=seed, drift=drift)
    render.console.print(f"[green]{rows:,}[/] rows{' (drifted)' if drift else ''} → {path}")


@app.command("batch-predict")
def batch_predict(
    source: Annotated[Path, typer.Argument(help="CSV or Parquet file with the feature columns.")],
    output: Annotated[
        Path | None, typer.Option(help="Parquet file to write (default: next to the input).")
    ] = None,
    alias: Annotated[str, typer.Option(help="Registry alias whose model scores the file.")] = "production",
    chunk_rows: Annotated[int, typer.Option(min=1_000, help="Rows per chunk (bounds memory).")] = 250_000,
    engine: Annotated[
        str | None,
        typer.Option(help="local (one process) or spark (MLOPS_SPARK_MASTER); default MLOPS_BATCH_ENGINE."),
    ] = None,
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Score a file with the batch inference pipeline (ZenML): gated per row, versioned, on one
    machine or on Spark (the output is then a Parquet dataset: a directory)."""
    settings, name = settings_for(project)
    from mlops.data.inputs import check_input_file
    from mlops.projects import get_project

    chosen = engine or settings.batch_engine
    if chosen not in ("local", "spark"):
        raise UsageError(f"unknown engine {chosen!r}", hint="use --engine local or --engine spark")
    settings = settings.model_copy(update={"batch_engine": chosen})  # the run's settings carry it
    target = output or source.with_name(f"{source.stem}.predictions.parquet")
    if chosen == "spark":
        if target.suffix.lower() != ".parquet":
            raise UsageError(f"cannot write {target.name}", hint="use a .parquet name")
        from mlops.batch.spark import java_home

        java_home(settings)  # no Java 17: say so now, with the fix, not after the pipeline started
    else:
        _check_output(target, (".parquet",))
    check_input_file(get_project(name), source)
    quiet_libraries()
    require_alias(settings, name, alias)
    from mlops.cli.progress import count_rows
    from mlops.runner import run_batch

    with render.pipeline_progress(
        settings,
        f"scoring {source.name} with {name}@{alias}",
        command="batch-predict",
        as_json=as_json,
        total_rows=None if as_json else count_rows(source),
    ):
        result = run_batch(settings, name, source, target, alias=alias, chunk_rows=chunk_rows)
    render.show(result, as_json, render.batch)


@app.command()
def drift(
    source: Annotated[Path | None, typer.Option("--input", help="Check a batch file, not the log.")] = None,
    window: Annotated[int, typer.Option(min=50, help="Most recent predictions (or rows).")] = 5_000,
    alias: Annotated[str, typer.Option(help="Alias whose training data is the reference.")] = "production",
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the monitoring pipeline: Evidently drift of the recent window vs the training data."""
    settings, name = settings_for(project)
    if source is not None:  # drifted data is what this looks for: readable is enough, no gate
        from mlops.data.inputs import check_input_file
        from mlops.projects import get_project

        check_input_file(get_project(name), source, gate=False)
    quiet_libraries()
    require_alias(settings, name, alias)
    from mlops.runner import run_monitoring

    with render.pipeline_progress(
        settings, f"checking drift of {name}@{alias} (Evidently)", command="drift", as_json=as_json
    ):
        result = run_monitoring(settings, name, alias=alias, source=source, window=window)
    render.show(result, as_json, render.drift)


@app.command()
def lineage(
    target: Annotated[str, typer.Argument(help="A prediction's request id, or a model version number.")],
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Trace prediction → model version → MLflow run → ZenML run → data → git commit and config."""
    settings, name = settings_for(project)
    quiet_libraries()
    from mlops import lineage as lin

    chain = lin.for_version(settings, name, target) if target.isdigit() else lin.for_request(settings, target)
    render.show(chain, as_json, render.lineage)


@app.command()
def reproduce(
    version: Annotated[
        str, typer.Argument(help="Model version to re-train from its recorded data and config.")
    ],
    project: ProjectOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-run training from the recorded dataset artifact and config; report whether metrics match."""
    settings, name = settings_for(project)
    from mlops.lineage import reproduce as do_reproduce

    with render.pipeline_progress(
        settings, f"re-training {name} version {version}", command="reproduce", as_json=as_json
    ):
        result = do_reproduce(settings, name, version)
    render.show(result, as_json, render.reproduction)
    if not result["match"]:
        raise SystemExit(1)
