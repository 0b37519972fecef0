"""The decision threshold of a binary model, chosen on validation data (never on the holdout)."""

from __future__ import annotations

import numpy as np


def choose_threshold(y_true: np.ndarray, scores: np.ndarray, *, min_recall: float | None = None) -> float:
    """The score at or above which a row is called positive.

    ``y_true`` holds 1 for the positive class and 0 otherwise; ``scores`` the positive-class
    probabilities. Candidates are the distinct scores (every threshold that changes a decision).

    - Without ``min_recall``: the threshold that maximises the F1 score of the positive class; among
      equal F1 the highest threshold wins (fewer alerts for the same quality).
    - With ``min_recall``: the highest threshold whose recall is at least ``min_recall`` (the most
      precise operating point that still finds that share of positives).

    Deterministic (no sampling, ties broken by the threshold value). With no positive (or no
    negative) rows there is nothing to tune and 0.5 is returned.
    """
    y = np.asarray(y_true).astype(int).ravel()
    s = np.asarray(scores, dtype=float).ravel()
    if y.shape != s.shape:
        raise ValueError(f"y_true and scores differ in length ({y.size} vs {s.size})")
    if min_recall is not None and not 0.0 <= min_recall <= 1.0:
        raise ValueError("min_recall must be within [0, 1]")
    positives = int(y.sum())
    if positives == 0 or positives == y.size:
        return 0.5
    # Distinct scores in decreasing order; predicted positive = score >= threshold.
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    tp = np.cumsum(y_sorted)
    fp = np.cumsum(1 - y_sorted)
    last = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]  # last row of each distinct score
    thresholds, tp, fp = s_sorted[last], tp[last], fp[last]
    recall = tp / positives
    if min_recall is not None:
        reaching = np.flatnonzero(recall >= min_recall - 1e-12)
        return float(thresholds[reaching[0]])  # thresholds decrease, so the first is the highest
    precision = tp / (tp + fp)
    f1 = np.where(tp > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    return float(thresholds[int(np.argmax(f1))])  # argmax takes the first, i.e. the highest threshold
