"""Per-group metrics of the sensitive attributes, and the fairness part of the model gate.

The gate compares **recall of the positive class** across groups (equal opportunity): among patients
who really are readmitted, every group should be flagged at a similar rate, so that no group is
systematically missed by the follow-up programme the model feeds. Groups with fewer rows than
``ModelGate.min_group_size`` are reported but not compared (too noisy to judge). Multiclass specs
use the recall of each row's true class averaged per group (macro recall would need every class
present in every group).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from mlops.spec import ProjectSpec

GAP_METRIC = "recall"
MISSING_GROUP = "(missing)"


def _group_labels(frame: pd.DataFrame, column: str) -> np.ndarray:
    col = frame[column]
    text = col.astype(object).where(col.notna(), "").astype(str).to_numpy()
    return np.where(text == "", MISSING_GROUP, text)


def group_metrics(
    spec: ProjectSpec,
    frame: pd.DataFrame,
    y_true: np.ndarray,
    proba: np.ndarray,
    threshold: float | None,
) -> dict[str, dict[str, dict[str, float]]]:
    """sensitive feature → group → metrics, computed on ``frame`` (rows aligned with ``y_true``/``proba``).

    Metrics per group: ``n`` (rows), ``base_rate`` (share truly positive), ``positive_rate`` (share
    predicted positive), ``recall`` (when the group has positives) and ``precision`` (when it has
    predicted positives) of the positive class at ``threshold`` (argmax when None), and ``roc_auc``
    when the group holds both classes; undefined metrics are left out, never NaN, so the result is
    valid JSON. Multiclass specs get ``n``, ``accuracy`` and ``recall``. Empty ``{}`` when the spec
    has no sensitive features.
    """
    from sklearn.metrics import roc_auc_score

    from mlops.ml.evaluate import predict_classes

    features = spec.model_gate.sensitive_features
    if not features:
        return {}
    y = np.asarray(y_true)
    proba = np.asarray(proba)
    pred = predict_classes(spec, proba, threshold)
    binary = spec.is_binary
    positive = spec.positive_class if spec.positive_class is not None else 1
    out: dict[str, dict[str, dict[str, float]]] = {}
    for feature in features:
        if feature not in frame.columns:
            raise KeyError(f"sensitive feature {feature!r} is not a column of the evaluation frame")
        labels = _group_labels(frame, feature)
        groups: dict[str, dict[str, float]] = {}
        for group in sorted(set(labels.tolist())):
            mask = labels == group
            yg, pg = y[mask], pred[mask]
            row: dict[str, float] = {"n": float(mask.sum())}
            if binary:
                truth, called = yg == positive, pg == positive
                row["base_rate"] = float(truth.mean())
                row["positive_rate"] = float(called.mean())
                if truth.any():
                    row["recall"] = float((truth & called).sum() / truth.sum())
                if called.any():
                    row["precision"] = float((truth & called).sum() / called.sum())
                if truth.any() and not truth.all():
                    row["roc_auc"] = float(roc_auc_score(truth.astype(int), proba[mask, positive]))
            else:
                row["accuracy"] = float((yg == pg).mean())
                per_class = [float((pg[yg == c] == c).mean()) for c in np.unique(yg)]
                row["recall"] = float(np.mean(per_class))
            groups[group] = row
        out[feature] = groups
    return out


def fairness_reasons(spec: ProjectSpec, groups: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """One reason per sensitive feature whose recall gap between groups exceeds ``max_group_gap``.

    Only groups with at least ``min_group_size`` rows and a defined recall take part; the reason names
    the feature, the best and the worst group, their values and sizes. The metric is the spec's
    ``model_gate.fairness_metric`` (recall by default: equal opportunity).
    """
    gate = spec.model_gate
    metric = gate.fairness_metric or GAP_METRIC
    reasons: list[str] = []
    for feature, by_group in groups.items():
        eligible = {
            g: m for g, m in by_group.items() if m.get("n", 0.0) >= gate.min_group_size and metric in m
        }
        if len(eligible) < 2:
            continue
        best = max(eligible, key=lambda g: (eligible[g][metric], g))
        worst = min(eligible, key=lambda g: (eligible[g][metric], g))
        gap = eligible[best][metric] - eligible[worst][metric]
        if gap > gate.max_group_gap:
            reasons.append(
                f"{metric} gap across {feature!r} is {gap:.3f} (max {gate.max_group_gap:.3f}): "
                f"{best!r} {eligible[best][metric]:.3f} (n={int(eligible[best]['n'])}) vs "
                f"{worst!r} {eligible[worst][metric]:.3f} (n={int(eligible[worst]['n'])})"
            )
    return reasons
