"""Metrics and the confusion-matrix plot, computed the same way for challenger and champion."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from mlops.spec import ProjectSpec


def predict_classes(spec: ProjectSpec, proba: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Class ids from probabilities; binary use cases may use a tuned threshold on the positive class."""
    if spec.is_binary and threshold is not None and spec.positive_class is not None:
        positive = spec.positive_class
        return np.where(proba[:, positive] >= threshold, positive, 1 - positive)
    return np.asarray(np.argmax(proba, axis=1))


def metrics(
    spec: ProjectSpec, y_true: np.ndarray, proba: np.ndarray, threshold: float | None = None
) -> dict[str, float]:
    from sklearn import metrics as m

    y_true = np.asarray(y_true)
    y_pred = predict_classes(spec, proba, threshold)
    labels = list(range(len(spec.class_names)))
    out = {
        "accuracy": float(m.accuracy_score(y_true, y_pred)),
        "f1_macro": float(m.f1_score(y_true, y_pred, average="macro", labels=labels, zero_division=0)),
        "precision_macro": float(
            m.precision_score(y_true, y_pred, average="macro", labels=labels, zero_division=0)
        ),
        "recall_macro": float(
            m.recall_score(y_true, y_pred, average="macro", labels=labels, zero_division=0)
        ),
        "log_loss": float(m.log_loss(y_true, np.clip(proba, 1e-15, 1.0), labels=labels)),
    }
    if len(np.unique(y_true)) == len(labels):
        if spec.is_binary:
            positive = spec.positive_class if spec.positive_class is not None else 1
            scores = proba[:, positive]
            y_bin = (y_true == positive).astype(int)
            out["roc_auc"] = float(m.roc_auc_score(y_bin, scores))
            out["average_precision"] = float(m.average_precision_score(y_bin, scores))
            out["recall_positive"] = float(
                m.recall_score(y_bin, (y_pred == positive).astype(int), zero_division=0)
            )
            out["precision_positive"] = float(
                m.precision_score(y_bin, (y_pred == positive).astype(int), zero_division=0)
            )
        else:
            out["roc_auc"] = float(m.roc_auc_score(y_true, proba, multi_class="ovr", labels=labels))
    return out


def confusion(
    spec: ProjectSpec, y_true: np.ndarray, proba: np.ndarray, threshold: float | None = None
) -> list[list[int]]:
    from sklearn.metrics import confusion_matrix

    labels = list(range(len(spec.class_names)))
    cm = confusion_matrix(np.asarray(y_true), predict_classes(spec, proba, threshold), labels=labels)
    return [[int(v) for v in row] for row in cm]


def confusion_png(spec: ProjectSpec, matrix: list[list[int]], title: str = "Confusion matrix") -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4))
    data = np.asarray(matrix)
    ax.imshow(data, cmap="Blues")
    ax.set_xticks(range(len(spec.class_names)), spec.class_names, rotation=30, ha="right")
    ax.set_yticks(range(len(spec.class_names)), spec.class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for (i, j), v in np.ndenumerate(data):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > data.max() / 2 else "black")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def holdout_xy(spec: ProjectSpec, frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    from mlops.ml.model import to_frame

    return to_frame(spec, frame), frame[spec.target].to_numpy()
