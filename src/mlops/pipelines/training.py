"""load + seal → validate → split → search → train → evaluate (gate) → export ONNX → register → promote.

The sealed slice goes from ``load_data`` straight to ``promote_model``: no step in between sees it.
The search sees the training split only (its trials cross-validate on it), never the holdout.
"""

from __future__ import annotations

from typing import Any

from zenml import pipeline

from mlops.steps.data import load_data, split_data, validate_data
from mlops.steps.register import promote_model, register_model
from mlops.steps.training import evaluate_model, export_onnx, search_hyperparameters, train_model


@pipeline(enable_cache=False)
def training_pipeline(
    run_settings: dict[str, Any], project: str = "iris", test_size: float = 0.3, seed: int = 42
) -> None:
    """``run_settings`` is ``Settings.step_parameters()``: no secrets (steps read them from their env)."""
    raw, dataset_hash, sealed, sealed_evidence = load_data(project=project, run_settings=run_settings)
    dataset = validate_data(raw, project=project)
    train_fraction = float(run_settings.get("train_fraction", 1.0))
    train_set, holdout = split_data(
        dataset, project=project, test_size=test_size, seed=seed, train_fraction=train_fraction
    )
    search = search_hyperparameters(train_set, project=project, seed=seed, run_settings=run_settings)
    model, decision = train_model(train_set, project=project, seed=seed, search=search)
    metrics, groups, matrix, _ = evaluate_model(model, holdout, decision, project=project)
    onnx_model, parity = export_onnx(model, holdout, project=project, run_settings=run_settings)
    version, _ = register_model(
        model,
        train_set,
        holdout,
        sealed,
        metrics,
        groups,
        decision,
        matrix,
        onnx_model,
        parity,
        dataset_hash,
        sealed_evidence,
        search,
        project=project,
        seed=seed,
        run_settings=run_settings,
    )
    promote_model(version, sealed, sealed_evidence, project=project, run_settings=run_settings)
