"""Data stage: load (never cached: it reads the outside world) and seal, validate, split."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from zenml import log_metadata, step

from mlops.data.split import fingerprint, split, subsample
from mlops.governance.gates import check_data
from mlops.governance.sealed import carve
from mlops.projects import get_project
from mlops.settings import Settings
from mlops.steps.hooks import run_failed


@step(enable_cache=False, on_failure=run_failed)
def load_data(
    project: str, run_settings: dict[str, Any]
) -> tuple[
    Annotated[pd.DataFrame, "raw_dataset"],
    Annotated[str, "dataset_hash"],
    Annotated[pd.DataFrame, "sealed_slice"],
    Annotated[dict[str, Any], "sealed_evidence"],
]:
    """Loads, then carves the sealed governance slice off before anything else sees the rows: the
    rest is what validation, splitting, training and evaluation get."""
    settings = Settings.from_step_parameters(run_settings)
    spec = get_project(project)
    frame = spec.load(settings)
    rest, sealed = carve(settings, spec, frame)
    # The dataset of record is what training drew from (the load minus the sealed slice): the
    # artifact and its hash, so lineage and `mlops reproduce` retrain from exactly those rows.
    digest = fingerprint(rest)
    evidence = sealed.evidence()
    log_metadata(
        {
            "rows": len(frame),
            "columns": len(frame.columns),
            "dataset_hash": digest,
            "loaded_hash": fingerprint(frame),
            "sealed": evidence,
            "rows_after_sealing": len(rest),
        }
    )
    return rest, digest, sealed.frame, evidence


@step(on_failure=run_failed)
def validate_data(dataset: pd.DataFrame, project: str) -> Annotated[pd.DataFrame, "validated_dataset"]:
    """Stops the run with every reason when the data gate refuses."""
    spec = get_project(project)
    check_data(spec, dataset)
    log_metadata({"data_gate": "passed", "rows": len(dataset)})
    return dataset


@step(on_failure=run_failed)
def split_data(
    dataset: pd.DataFrame, project: str, test_size: float, seed: int, train_fraction: float = 1.0
) -> tuple[Annotated[pd.DataFrame, "train_set"], Annotated[pd.DataFrame, "eval_holdout"]]:
    """Splits the unsealed rows; ``train_fraction`` < 1 fits on a stratified share (a weakened model)."""
    spec = get_project(project)
    train, holdout = split(dataset, spec.target, test_size, seed)
    train = subsample(train, spec.target, train_fraction, seed)
    log_metadata(
        {
            "train_rows": len(train),
            "holdout_rows": len(holdout),
            "holdout_hash": fingerprint(holdout),
            "seed": seed,
            "train_fraction": train_fraction,
        }
    )
    return train, holdout
