"""The online statistics against textbook values: Wilson intervals and Newcombe's hybrid score
interval for a difference of independent proportions (the worked examples of Newcombe, 1998,
Stat Med 17:857 and 17:873), the paired interval (Newcombe, 1998, Stat Med 17:2635, method 10),
percentiles, PSI and KS, and the fixed looks' schedule and level."""

from __future__ import annotations

import math

import pytest

from mlops.ml import online


@pytest.mark.parametrize(
    ("k", "n", "lo", "hi"),
    [(81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0, 0.1611), (1, 29, 0.0061, 0.1718)],
)
def test_wilson_matches_newcombes_examples(k: int, n: int, lo: float, hi: float) -> None:
    p = online.wilson(k, n)
    assert (round(p.lo, 4), round(p.hi, 4)) == (lo, hi)
    assert p.estimate == pytest.approx(k / n)


def test_wilson_edges_and_bad_counts() -> None:
    assert online.wilson(20, 20).hi == 1.0 and online.wilson(0, 20).lo == 0.0
    empty = online.wilson(0, 0)
    assert (empty.lo, empty.hi) == (0.0, 1.0) and math.isnan(empty.estimate)
    assert online.wilson(5, 10, 0.99).hi > online.wilson(5, 10, 0.95).hi  # a higher level is wider
    with pytest.raises(ValueError, match="0 <= k <= n"):
        online.wilson(11, 10)
    with pytest.raises(ValueError, match="level"):
        online.z_value(1.0)
    assert online.z_value(0.95) == pytest.approx(1.959964, abs=1e-6)


@pytest.mark.parametrize(
    ("k1", "n1", "k2", "n2", "lo", "hi"),
    [
        (56, 70, 48, 80, 0.0524, 0.3339),
        (9, 10, 3, 10, 0.1705, 0.8090),
        (5, 56, 0, 29, -0.0381, 0.1926),
        (0, 10, 0, 20, -0.1611, 0.2775),
        (10, 10, 0, 20, 0.6791, 1.0000),
    ],
)
def test_newcombe_unpaired_matches_method_10_of_the_paper(k1, n1, k2, n2, lo, hi) -> None:
    d = online.newcombe_unpaired(k1, n1, k2, n2)
    assert (round(d.lo, 4), round(d.hi, 4)) == (lo, hi)
    assert d.estimate == pytest.approx(k1 / n1 - k2 / n2) and d.method == "newcombe-unpaired"


def test_newcombe_unpaired_needs_both_samples() -> None:
    with pytest.raises(ValueError, match="at least one observation"):
        online.newcombe_unpaired(1, 1, 0, 0)


def test_newcombe_paired_is_method_10_with_its_phi_correction() -> None:
    """The formula, term by term, on Newcombe's example table (e, f, g, h) = (36, 12, 2, 5)."""
    e, f, g, h = 36, 12, 2, 5
    n = e + f + g + h
    a, b = online.wilson(e + f, n), online.wilson(e + g, n)
    phi = max(e * h - f * g - n / 2, 0) / math.sqrt((e + f) * (g + h) * (e + g) * (f + h))
    dl_a, du_a, dl_b, du_b = a.estimate - a.lo, a.hi - a.estimate, b.estimate - b.lo, b.hi - b.estimate
    d = online.newcombe_paired(e, f, g, h)
    assert d.estimate == pytest.approx((f - g) / n)
    assert d.lo == pytest.approx(d.estimate - math.sqrt(dl_a**2 - 2 * phi * dl_a * du_b + du_b**2))
    assert d.hi == pytest.approx(d.estimate + math.sqrt(du_a**2 - 2 * phi * du_a * dl_b + dl_b**2))
    assert (round(d.lo, 4), round(d.hi, 4)) == (0.0498, 0.3110)


def test_pairing_narrows_the_interval_of_correlated_answers() -> None:
    """Two versions that mostly agree: the paired interval is narrower than treating them apart."""
    paired = online.newcombe_paired(both=80, only_a=6, only_b=4, neither=10)
    unpaired = online.newcombe_unpaired(86, 100, 84, 100)
    assert paired.estimate == pytest.approx(unpaired.estimate)
    assert paired.hi - paired.lo < unpaired.hi - unpaired.lo


def test_paired_edges() -> None:
    same = online.newcombe_paired(both=50, only_a=0, only_b=0, neither=0)  # a marginal is 0: phi is 0
    assert same.estimate == 0 and same.lo < 0 < same.hi
    with pytest.raises(ValueError, match="at least one pair"):
        online.newcombe_paired(0, 0, 0, 0)
    with pytest.raises(ValueError, match="non-negative"):
        online.newcombe_paired(1, -1, 0, 0)


def test_difference_verdicts() -> None:
    worse = online.newcombe_unpaired(50, 100, 90, 100)
    assert worse.shown_worse() and not worse.noninferior(0.05)
    tie = online.newcombe_unpaired(900, 1000, 900, 1000)
    assert not tie.shown_worse() and tie.noninferior(0.05) and not tie.noninferior(0.01)


def test_percentiles() -> None:
    values = list(range(1, 101))
    assert online.percentile(values, 50) == pytest.approx(50.5)
    assert online.percentile(values, 99) == pytest.approx(99.01)
    assert online.percentile([], 99) is None


def test_psi_and_ks_see_a_shift_and_not_a_copy() -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    reference = rng.beta(8, 2, 5000)
    assert online.psi(reference, reference) == pytest.approx(0.0, abs=1e-12)
    assert online.ks(reference, reference) == 0.0
    shifted = rng.beta(2, 8, 5000)
    assert online.psi(reference, shifted) > 0.25 and online.ks(reference, shifted) > 0.5
    assert online.psi(reference, rng.beta(8, 2, 5000)) < 0.1
    assert online.psi([], shifted) is None and online.ks(reference, []) is None
    assert online.psi([1.0] * 100, [1.0] * 50 + [0.5] * 50) > 0.25  # ties: collapsed bins still work


def test_fixed_looks_schedule_and_level() -> None:
    schedule = online.looks(50, 10)
    assert schedule[:3] == [50, 100, 150] and schedule[-1] == 500
    assert online.last_look(49, schedule) is None
    assert online.last_look(50, schedule) == 50 and online.last_look(149, schedule) == 100
    assert online.last_look(10_000, schedule) == 500
    assert online.look_level(0.05, 10) == pytest.approx(0.995)
    assert online.first_look(500, 10) == 50 and online.first_look(20, 10) == 10
    with pytest.raises(ValueError):
        online.looks(0, 3)
    with pytest.raises(ValueError):
        online.look_level(0.05, 0)
