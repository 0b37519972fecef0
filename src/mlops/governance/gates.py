"""Data and model gates. Each returns the list of reasons it refuses; empty means it passes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops.errors import GateFailed

if TYPE_CHECKING:
    import pandas as pd

    from mlops.spec import ProjectSpec


def data_reasons(
    spec: ProjectSpec, frame: pd.DataFrame, *, with_target: bool = True, batch: bool = False
) -> list[str]:
    """Schema, ranges, missing rates; for training data also size, duplicates and class balance.

    ``batch=True`` is the gate for scoring inputs (a chunk of a file, or rows of a request): the same
    schema and missing-rate checks, without the checks that only make sense for a training set.
    """
    from mlops.data.validation import schema_reasons

    gate = spec.data_gate
    missing_cols = [c for c in spec.feature_names + ([spec.target] if with_target else []) if c not in frame]
    if missing_cols:
        return [f"missing column(s): {', '.join(missing_cols)}"]
    reasons = schema_reasons(spec, frame, with_target=with_target)
    if not batch and len(frame) < gate.min_rows:
        reasons.append(f"{len(frame)} rows, fewer than the minimum {gate.min_rows}")
    for f in spec.features:
        col = frame[f.name]
        missing = col.isna()
        if f.kind == "categorical":  # missing categoricals travel as "" (see ml.model.to_frame)
            missing |= col.eq("")
        rate = float(missing.mean())
        if rate > gate.max_missing_rate:
            reasons.append(f"column {f.name!r} is {rate:.1%} missing (max {gate.max_missing_rate:.1%})")
    if not batch and len(frame):
        dup = float(frame.duplicated().mean())
        if dup > gate.max_duplicate_rate:
            reasons.append(f"{dup:.1%} duplicate rows (max {gate.max_duplicate_rate:.1%})")
    if with_target and len(frame) and spec.target in frame:
        rates = frame[spec.target].value_counts(normalize=True)
        for idx, name in enumerate(spec.class_names):
            rate = float(rates.get(idx, 0.0))
            if rate < gate.min_class_rate:
                reasons.append(f"class {name!r} is {rate:.1%} of rows (min {gate.min_class_rate:.1%})")
    return reasons


def check_data(spec: ProjectSpec, frame: pd.DataFrame, *, with_target: bool = True) -> None:
    reasons = data_reasons(spec, frame, with_target=with_target)
    if reasons:
        raise GateFailed(f"data gate failed for {spec.name!r}", reasons=reasons)


def metric_reasons(spec: ProjectSpec, metrics: dict[str, float]) -> list[str]:
    reasons = []
    for name, minimum in spec.model_gate.minimums.items():
        value = metrics.get(name)
        if value is None:
            reasons.append(f"metric {name!r} was not computed")
        elif value < minimum:
            reasons.append(f"{name} {value:.4f} is below the minimum {minimum:.4f}")
    return reasons


def model_gate(
    spec: ProjectSpec, holdout: pd.DataFrame, proba: Any, threshold: float | None
) -> tuple[dict[str, float], dict[str, Any], list[str]]:
    """Metrics, per-group metrics and every reason the model gate refuses, from holdout probabilities."""
    from mlops.ml.evaluate import holdout_xy, metrics
    from mlops.ml.fairness import fairness_reasons, group_metrics

    _, y = holdout_xy(spec, holdout)
    values = metrics(spec, y, proba, threshold)
    groups = group_metrics(spec, holdout, y, proba, threshold)
    return values, groups, metric_reasons(spec, values) + list(fairness_reasons(spec, groups))
