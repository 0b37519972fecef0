"""The decision threshold of binary use cases (``mlops.ml.threshold``)."""

from __future__ import annotations

import numpy as np
import pytest

from mlops.ml.threshold import choose_threshold


def test_threshold_maximises_f1_and_is_deterministic() -> None:
    y = np.array([0, 0, 0, 0, 1, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.6, 0.7, 0.9])
    # >= 0.4: tp 3, fp 1 -> F1 0.857, the best; every other cut is worse.
    assert choose_threshold(y, s) == pytest.approx(0.4)
    assert choose_threshold(y, s) == choose_threshold(y.copy(), s.copy())


def test_threshold_prefers_the_highest_of_equal_f1() -> None:
    y = np.array([1, 0, 1, 0])
    s = np.array([0.9, 0.8, 0.7, 0.1])
    # >= 0.9: P 1, R .5 -> F1 .667; >= 0.7: P .667, R 1 -> F1 .8; so 0.7.
    assert choose_threshold(y, s) == pytest.approx(0.7)
    y2, s2 = np.array([1, 0, 0, 1]), np.array([0.9, 0.5, 0.5, 0.1])
    # F1 at 0.9 = .667; at 0.5 = .5; at 0.1 = .667 -> the higher, 0.9
    assert choose_threshold(y2, s2) == pytest.approx(0.9)


def test_threshold_with_a_recall_floor_is_the_highest_reaching_it() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(2_000) < 0.15).astype(int)
    s = np.clip(0.3 * y + rng.normal(0.3, 0.15, 2_000), 0, 1)
    t = choose_threshold(y, s, min_recall=0.8)
    recall = ((s >= t) & (y == 1)).sum() / y.sum()
    assert recall >= 0.8
    higher = np.unique(s[s > t])
    assert higher.size == 0 or ((s >= higher[0]) & (y == 1)).sum() / y.sum() < 0.8
    assert choose_threshold(y, s, min_recall=1.0) == pytest.approx(s[y == 1].min())


def test_threshold_edge_cases() -> None:
    assert choose_threshold(np.zeros(5), np.linspace(0, 1, 5)) == 0.5
    with pytest.raises(ValueError):
        choose_threshold(np.array([0, 1]), np.array([0.5]))
    with pytest.raises(ValueError):
        choose_threshold(np.array([0, 1]), np.array([0.2, 0.5]), min_recall=1.5)
