"""Batch inference: the model that holds the alias scores a CSV/Parquet file into versioned predictions,
in one process (``engine="local"``) or on Spark (``"spark"``; empty: the ``batch_engine`` setting)."""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from mlops.steps.batch import resolve_model, score_batch


@pipeline(enable_cache=False)
def batch_inference_pipeline(
    run_settings: dict[str, Any],
    project: str,
    input_path: str,
    output_path: str,
    alias: str = "production",
    chunk_rows: int = 250_000,
    engine: str = "",
) -> None:
    version = resolve_model(project=project, alias=alias, run_settings=run_settings)
    score_batch(
        version,
        project=project,
        input_path=input_path,
        output_path=output_path,
        chunk_rows=chunk_rows,
        run_settings=run_settings,
        engine=engine,
    )
