"""The paired bootstrap: exact on the full sample, agrees with scikit-learn on a resample, seeded."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as m

from mlops.ml.bootstrap import metric_fn, multiplicities, paired_bootstrap


def _expand(w: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(w.shape[1]), w[0].astype(int))


@pytest.mark.parametrize(
    ("metric", "reference"),
    [
        ("accuracy", lambda y, p: m.accuracy_score(y, p)),
        ("f1_macro", lambda y, p: m.f1_score(y, p, average="macro", labels=[0, 1, 2], zero_division=0)),
        ("precision_macro", lambda y, p: m.precision_score(y, p, average="macro", zero_division=0)),
        ("recall_macro", lambda y, p: m.recall_score(y, p, average="macro", zero_division=0)),
    ],
)
def test_class_metrics_match_sklearn_on_a_resample(metric, reference) -> None:
    rng = np.random.default_rng(1)
    y, pred = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    w = multiplicities(y, 1, seed=4)
    rows = _expand(w)
    assert metric_fn(metric, 3)(w, y, pred)[0] == pytest.approx(reference(y[rows], pred[rows]), abs=1e-12)


def test_auc_matches_sklearn_with_ties_and_duplicates() -> None:
    rng = np.random.default_rng(2)
    y = (rng.random(500) < 0.2).astype(int)
    score = np.round(rng.random(500) + 0.3 * y, 1)  # many ties
    w = multiplicities(y, 1, seed=9)
    rows = _expand(w)
    assert metric_fn("roc_auc", 2)(w, y, score)[0] == pytest.approx(m.roc_auc_score(y[rows], score[rows]))


def test_resamples_keep_the_class_counts() -> None:
    y = np.array([0] * 7 + [1] * 3 + [2] * 5)
    w = multiplicities(y, 50, seed=0)
    for k, count in ((0, 7), (1, 3), (2, 5)):
        assert (w[:, y == k].sum(axis=1) == count).all()


def test_same_input_same_interval_and_another_seed_another_one() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    a, b = np.where(rng.random(300) < 0.8, y, 1 - y), np.where(rng.random(300) < 0.75, y, 1 - y)
    first = paired_bootstrap("accuracy", y, a, b, n_classes=2, resamples=1000, seed=5)
    assert first == paired_bootstrap("accuracy", y, a, b, n_classes=2, resamples=1000, seed=5)
    assert first != paired_bootstrap("accuracy", y, a, b, n_classes=2, resamples=1000, seed=6)
    assert first.lo < first.estimate < first.hi and first.resamples == 1000 and first.n == 300
    assert first.estimate == pytest.approx(m.accuracy_score(y, a) - m.accuracy_score(y, b))


def test_identical_models_give_a_zero_width_interval() -> None:
    y = np.array([0, 1, 2] * 10)
    iv = paired_bootstrap("f1_macro", y, y, y, n_classes=3, resamples=1000)
    assert (iv.estimate, iv.lo, iv.hi) == (0.0, 0.0, 0.0)


def test_bad_input_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="same non-empty rows"):
        paired_bootstrap("accuracy", np.array([0, 1]), np.array([0]), np.array([0, 1]), n_classes=2)
    with pytest.raises(ValueError, match="no paired bootstrap for metric 'log_loss'"):
        metric_fn("log_loss", 2)
