"""Evaluation plots for a run, from predictions already made: ROC, precision-recall, calibration.

Made with scikit-learn's display classes on the holdout's probabilities, not by
``mlflow.models.evaluate``, which would load (unpickle) a model to predict again. Binary use cases
only: for them a threshold is chosen and these curves say what it trades. The confusion matrix, for
every use case, is ``ml.evaluate.confusion_png``.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from mlops.spec import ProjectSpec


def curve_pngs(spec: ProjectSpec, y_true: np.ndarray, proba: np.ndarray) -> dict[str, bytes]:
    """``{file name: PNG}`` for the positive class of a binary use case; empty otherwise."""
    if not spec.is_binary or spec.positive_class is None or len(np.unique(y_true)) < 2:
        return {}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import CalibrationDisplay
    from sklearn.metrics import PrecisionRecallDisplay, RocCurveDisplay

    positive = spec.positive_class
    y = (np.asarray(y_true) == positive).astype(int)
    scores = np.asarray(proba)[:, positive]
    label = spec.class_names[positive]
    out: dict[str, bytes] = {}
    for name, draw in (
        ("roc_curve.png", lambda ax: RocCurveDisplay.from_predictions(y, scores, ax=ax, name=label)),
        ("pr_curve.png", lambda ax: PrecisionRecallDisplay.from_predictions(y, scores, ax=ax, name=label)),
        (
            "calibration.png",
            lambda ax: CalibrationDisplay.from_predictions(y, scores, n_bins=10, ax=ax, name=label),
        ),
    ):
        fig, ax = plt.subplots(figsize=(4.5, 4))
        draw(ax)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=100)
        plt.close(fig)
        out[name] = buf.getvalue()
    return out
