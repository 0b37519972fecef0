"""Data and model gates. Each returns the list of reasons it refuses; empty means it passes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops.data.validation import data_reasons
from mlops.errors import GateFailed

if TYPE_CHECKING:
    import pandas as pd

    from mlops.spec import ProjectSpec


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
