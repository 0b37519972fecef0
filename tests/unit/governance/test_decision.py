"""The promotion rule: gates, then the paired bootstrap interval against the superiority margin (automatic
promotion) or the non-inferiority margin (re-validation), on synthetic predictions of the same rows."""

from __future__ import annotations

import numpy as np
import pytest

from mlops.governance.decision import decide, noninferiority_reason
from mlops.ml.bootstrap import Interval, paired_bootstrap


def labels_with_accuracy(y: np.ndarray, accuracy: float, rng: np.random.Generator) -> np.ndarray:
    """Predictions right on about ``accuracy`` of the rows (a wrong row predicts another class)."""
    right = rng.random(len(y)) < accuracy
    return np.where(right, y, (y + 1) % 3)


def judged(y: np.ndarray, challenger: np.ndarray, champion: np.ndarray, *, margin: float = 0.0):
    interval = paired_bootstrap("f1_macro", y, challenger, champion, n_classes=3, resamples=2000, seed=42)
    return decide(
        metric="f1_macro",
        challenger=0.0,
        champion=0.0,
        margin=margin,
        gate_reasons=[],
        interval=interval,
        evidence={"source": "sealed", "fingerprint": "f" * 64, "rows": len(y), "epoch": 0},
    )


def test_a_clear_win_promotes() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    d = judged(y, labels_with_accuracy(y, 0.95, rng), labels_with_accuracy(y, 0.70, rng))
    assert d.outcome == "promoted" and d.interval is not None and d.interval.lo > 0
    assert d.test == "superiority" and "CI" in d.reason and "superiority margin 0.0" in d.reason


def test_a_tie_keeps_the_champion() -> None:
    y = np.random.default_rng(1).integers(0, 3, 150)
    same = labels_with_accuracy(y, 0.9, np.random.default_rng(2))
    d = judged(y, same, same.copy())
    assert d.outcome == "kept" and d.interval is not None and d.interval.width == 0.0
    assert "champion kept" in d.reason


def test_a_small_noisy_win_keeps_the_champion() -> None:
    """30 sealed rows (iris-sized): one more right row is not evidence."""
    rng = np.random.default_rng(3)
    y = np.array([0, 1, 2] * 10)
    champion = labels_with_accuracy(y, 0.9, rng)
    challenger = champion.copy()
    wrong = np.flatnonzero(champion != y)
    challenger[wrong[0]] = y[wrong[0]]  # the challenger fixes exactly one row
    d = judged(y, challenger, champion)
    assert d.interval is not None and d.interval.estimate > 0 and d.interval.contains(0.0)
    assert d.outcome == "kept"


def test_a_small_real_gain_on_a_large_holdout_promotes() -> None:
    """The same kind of gain (the challenger fixes 2 % of the rows, breaks none) on 20,000 rows."""
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 20_000)
    champion = labels_with_accuracy(y, 0.85, rng)
    challenger = champion.copy()
    wrong = np.flatnonzero(champion != y)
    fix = wrong[: len(y) // 50]
    challenger[fix] = y[fix]
    d = judged(y, challenger, champion)
    assert d.interval is not None and 0 < d.interval.lo < 0.05
    assert d.outcome == "promoted"


def test_the_margin_must_be_cleared_by_the_lower_bound() -> None:
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 300)
    a, b = labels_with_accuracy(y, 0.95, rng), labels_with_accuracy(y, 0.70, rng)
    interval = paired_bootstrap("f1_macro", y, a, b, n_classes=3, seed=1)
    assert judged(y, a, b, margin=interval.lo - 0.01).outcome == "promoted"
    assert judged(y, a, b, margin=interval.lo + 0.01).outcome == "kept"


def test_failed_gate_rejects_even_a_clear_win() -> None:
    interval = Interval(0.3, 0.2, 0.4, 0.95, 2000, 100, 0, "f1_macro")
    d = decide(
        metric="f1_macro",
        challenger=0.99,
        champion=0.5,
        margin=0.0,
        gate_reasons=["too low"],
        interval=interval,
    )
    assert d.outcome == "rejected" and d.gate_reasons == ["too low"]


def test_no_champion_promotes_the_first_passing_model() -> None:
    d = decide(metric="f1_macro", challenger=0.9, champion=None, margin=0.0, gate_reasons=[])
    assert d.outcome == "promoted" and "no champion" in d.reason and d.test == "none"


def test_a_champion_without_an_interval_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="interval"):
        decide(metric="f1_macro", challenger=0.9, champion=0.8, margin=0.0, gate_reasons=[])


def test_the_record_carries_the_statistics() -> None:
    interval = Interval(0.012, -0.004, 0.027, 0.95, 2000, 4000, 42, "roc_auc")
    d = decide(
        metric="roc_auc",
        challenger=0.70,
        champion=0.688,
        margin=0.0,
        gate_reasons=[],
        interval=interval,
        noninferiority_margin=0.01,
        evidence={"source": "sealed", "fingerprint": "ab" * 32, "rows": 4000, "epoch": 0},
        notes={"champion_unservable": "x"},
    )
    assert d.reason == (
        "roc_auc +0.0120 [95% CI -0.0040, +0.0270] vs champion, superiority margin 0.0: "
        "not shown better, champion kept"
    )
    record = d.as_dict()
    assert record["interval"]["resamples"] == 2000 and record["test"] == "superiority"
    assert record["margin"] == 0.0 and record["noninferiority_margin"] == 0.01
    assert record["evidence"]["rows"] == 4000 and record["champion_unservable"] == "x"
    assert d.tags()["promotion.interval"] == "[-0.0040, +0.0270]"


@pytest.mark.parametrize(("lo", "passes"), [(-0.005, True), (-0.01, False), (-0.02, False), (0.0, True)])
def test_noninferiority_passes_above_minus_the_margin(lo: float, passes: bool) -> None:
    interval = Interval(0.0, lo, 0.01, 0.95, 2000, 100, 0, "roc_auc")
    assert (noninferiority_reason(interval, 0.01, "production v1") is None) is passes
