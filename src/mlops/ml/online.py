"""The statistics of a rollout's online evidence, as pure functions of counts and samples.

Live accuracy is a proportion (correct / labelled), so its intervals are score intervals, which keep
their coverage at the small counts a fresh canary has (the Wald interval does not):

- ``wilson``: one proportion (Wilson, 1927).
- ``newcombe_unpaired``: the difference of two independent proportions, Newcombe's hybrid score
  method (method 10 of Newcombe, 1998, Stat Med 17:873). Canary mode: candidate and production
  answer different requests.
- ``newcombe_paired``: the difference of two proportions measured on the same requests, Newcombe's
  method 10 for paired data (Stat Med 17:2635), whose correlation term (phi, with Newcombe's
  correction) credits the pairing. Shadow mode: both versions score every request.

Label-free evidence, for labels that arrive late: ``agreement`` (a Wilson interval of the share of
requests where the candidate picks production's class), ``percentile`` (p50/p99 latency) and
``psi`` / ``ks``, the drift of the candidate's predicted-class probability against production's.

Fixed looks, not a test after every request: live accuracy is judged only when the labelled count
reaches one of ``looks(first, count)`` (``first``, ``2 first``, ...), each look on exactly the labels
counted up to it, at level ``1 - alpha / count`` (Bonferroni's split of alpha over the looks), so the
chance of a false alarm over the whole rollout stays at most ``alpha`` however often the guard runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

PSI_BINS = 10
PSI_FLOOR = 1e-4  # an empty bin's share: keeps the log finite (the usual smoothing of PSI)


def z_value(level: float) -> float:
    """The two-sided normal quantile of ``level`` (1.959964 for 0.95)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), not {level}")
    return NormalDist().inv_cdf(0.5 + level / 2)


@dataclass(frozen=True)
class Proportion:
    """``k`` of ``n`` and its score interval."""

    k: int
    n: int
    estimate: float
    lo: float
    hi: float
    level: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Difference:
    """``candidate - production`` of a proportion and its interval; ``method`` names how."""

    estimate: float
    lo: float
    hi: float
    level: float
    method: str  # newcombe-unpaired | newcombe-paired
    n_candidate: int
    n_production: int

    def shown_worse(self, margin: float = 0.0) -> bool:
        """The whole interval lies below ``-margin``: the candidate is worse, beyond noise."""
        return self.hi < -margin

    def noninferior(self, margin: float) -> bool:
        """The lower bound clears ``-margin``: the candidate is shown not worse by more than it."""
        return self.lo > -margin

    def text(self) -> str:
        return f"{self.estimate:+.4f} [{self.level:.1%} CI {self.lo:+.4f}, {self.hi:+.4f}]"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def wilson(k: int, n: int, level: float = 0.95) -> Proportion:
    """The Wilson score interval of ``k / n``; ``n == 0`` gives the whole of [0, 1]."""
    if n < 0 or not 0 <= k <= max(n, 0):
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return Proportion(0, 0, float("nan"), 0.0, 1.0, level)
    z = z_value(level)
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    scale = 1 + z * z / n
    lo, hi = (centre - half) / scale, (centre + half) / scale
    # at k = 0 (k = n) the bound is exactly 0 (1); rounding must not put it just beside
    return Proportion(k, n, p, 0.0 if k == 0 else max(0.0, lo), 1.0 if k == n else min(1.0, hi), level)


def newcombe_unpaired(k1: int, n1: int, k2: int, n2: int, level: float = 0.95) -> Difference:
    """``k1/n1 - k2/n2`` for two independent samples: Newcombe's hybrid score interval."""
    if n1 <= 0 or n2 <= 0:
        raise ValueError(f"both samples need at least one observation, got n1={n1}, n2={n2}")
    a, b = wilson(k1, n1, level), wilson(k2, n2, level)
    d = a.estimate - b.estimate
    lo = d - math.hypot(a.estimate - a.lo, b.hi - b.estimate)
    hi = d + math.hypot(a.hi - a.estimate, b.estimate - b.lo)
    return Difference(d, max(-1.0, lo), min(1.0, hi), level, "newcombe-unpaired", n1, n2)


def newcombe_paired(both: int, only_a: int, only_b: int, neither: int, level: float = 0.95) -> Difference:
    """The paired difference ``p_a - p_b`` on the same items: ``both`` right, ``only_a`` (only the
    candidate right), ``only_b`` (only production right), ``neither``. Newcombe's method 10."""
    counts = (both, only_a, only_b, neither)
    if min(counts) < 0:
        raise ValueError(f"counts must be non-negative, got {counts}")
    n = sum(counts)
    if n == 0:
        raise ValueError("a paired interval needs at least one pair")
    a, b = wilson(both + only_a, n, level), wilson(both + only_b, n, level)
    d = (only_a - only_b) / n
    marginals = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    phi = 0.0
    if marginals > 0:
        cross = both * neither - only_a * only_b
        # Newcombe: a positive association is shrunk by n/2 (not below 0); a negative one is kept
        corrected = max(cross - n / 2, 0.0) if cross > 0 else float(cross)
        phi = corrected / math.sqrt(marginals)
    dl_a, du_a = a.estimate - a.lo, a.hi - a.estimate
    dl_b, du_b = b.estimate - b.lo, b.hi - b.estimate
    lo = d - math.sqrt(max(0.0, dl_a**2 - 2 * phi * dl_a * du_b + du_b**2))
    hi = d + math.sqrt(max(0.0, du_a**2 - 2 * phi * du_a * dl_b + dl_b**2))
    return Difference(d, max(-1.0, lo), min(1.0, hi), level, "newcombe-paired", n, n)


def percentile(values: Sequence[float] | np.ndarray, q: float) -> float | None:
    """The ``q``-th percentile (0-100, linear interpolation); None without values."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return None
    return float(np.percentile(data, q))


def psi(reference: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray) -> float | None:
    """The population stability index of ``current`` against ``reference`` over the reference's
    deciles (0.1: a shift worth a look, 0.25: a large one, by the usual reading). None when a side
    is empty. Bins collapse where the reference has ties (a confident model's many 1.0 scores)."""
    ref, cur = np.asarray(reference, dtype=float), np.asarray(current, dtype=float)
    if ref.size == 0 or cur.size == 0:
        return None
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, PSI_BINS + 1)[1:-1]))
    expected = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1) / ref.size
    actual = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1) / cur.size
    expected, actual = np.maximum(expected, PSI_FLOOR), np.maximum(actual, PSI_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def ks(reference: Sequence[float] | np.ndarray, current: Sequence[float] | np.ndarray) -> float | None:
    """The two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs."""
    ref, cur = np.sort(np.asarray(reference, dtype=float)), np.sort(np.asarray(current, dtype=float))
    if ref.size == 0 or cur.size == 0:
        return None
    grid = np.concatenate([ref, cur])
    gap = (
        np.searchsorted(ref, grid, side="right") / ref.size
        - np.searchsorted(cur, grid, side="right") / cur.size
    )
    return float(np.max(np.abs(gap)))


# ----- fixed looks -----
def looks(first: int, count: int) -> list[int]:
    """The labelled counts at which live accuracy is judged: ``first, 2 first, ..., count first``."""
    if first < 1 or count < 1:
        raise ValueError(f"looks need first >= 1 and count >= 1, got {first}, {count}")
    return [first * k for k in range(1, count + 1)]


def last_look(labelled: int, schedule: Sequence[int]) -> int | None:
    """The largest look reached by ``labelled`` labels (the one to judge now); None before the first."""
    reached = [n for n in schedule if n <= labelled]
    return reached[-1] if reached else None


def look_level(alpha: float, count: int) -> float:
    """The confidence level of each of ``count`` looks: ``1 - alpha / count`` (Bonferroni)."""
    if not 0.0 < alpha < 1.0 or count < 1:
        raise ValueError(f"need 0 < alpha < 1 and count >= 1, got {alpha}, {count}")
    return 1.0 - alpha / count


def first_look(min_requests: int, count: int) -> int:
    """The schedule's step: ``min_requests`` spread over ``count`` looks, at least 10 labels a look."""
    return max(10, min_requests // max(count, 1))
