"""Data stage: load (never cached: it reads the outside world), validate, split."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from zenml import log_metadata, step

from mlops.data.split import fingerprint, split
from mlops.governance.gates import check_data
from mlops.projects import get_project
from mlops.settings import Settings
from mlops.steps.hooks import run_failed


@step(enable_cache=False, on_failure=run_failed)
def load_data(
    project: str, run_settings: dict[str, Any]
) -> tuple[Annotated[pd.DataFrame, "raw_dataset"], Annotated[str, "dataset_hash"]]:
    spec = get_project(project)
    frame = spec.load(Settings.from_step_parameters(run_settings))
    digest = fingerprint(frame)
    log_metadata({"rows": len(frame), "columns": len(frame.columns), "dataset_hash": digest})
    return frame, digest


@step(on_failure=run_failed)
def validate_data(dataset: pd.DataFrame, project: str) -> Annotated[pd.DataFrame, "validated_dataset"]:
    """Stops the run with every reason when the data gate refuses."""
    spec = get_project(project)
    check_data(spec, dataset)
    log_metadata({"data_gate": "passed", "rows": len(dataset)})
    return dataset


@step(on_failure=run_failed)
def split_data(
    dataset: pd.DataFrame, project: str, test_size: float, seed: int
) -> tuple[Annotated[pd.DataFrame, "train_set"], Annotated[pd.DataFrame, "eval_holdout"]]:
    spec = get_project(project)
    train, holdout = split(dataset, spec.target, test_size, seed)
    log_metadata(
        {
            "train_rows": len(train),
            "holdout_rows": len(holdout),
            "holdout_hash": fingerprint(holdout),
            "seed": seed,
        }
    )
    return train, holdout
