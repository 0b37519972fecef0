"""Behavioural checks of a model (CheckList, Ribeiro et al., 2020), as the use-case spec declares them.

Metrics on a holdout say how often a model is right; these say whether it behaves as the domain
requires: invariance (a change that must not matter does not), directional expectation (a change
that may only raise the risk never lowers it) and minimum functionality (obvious cases are right).
Each check runs through the model's own ``predict_proba`` on rows in the model's format
(``ml.model.to_frame``), one call per check, and returns the cases that fail, named, so a refusal
says which row, which change and what the model answered before and after. Pure: no I/O, seeded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops.ml.evaluate import predict_classes
from mlops.ml.model import to_frame

if TYPE_CHECKING:
    from mlops.spec import Directional, Invariance, MinimumFunctionality, ProjectSpec, RawInvariance

PredictProba = Callable[[pd.DataFrame], Any]


@dataclass(frozen=True)
class Case:
    """One failing case: the row (holdout index label, raw row position or case number), the change
    made to it, and the model's answer before and after."""

    row: Any
    perturbation: str
    before: str
    after: str

    def __str__(self) -> str:
        return f"row {self.row} ({self.perturbation}): {self.before} -> {self.after}"


@dataclass(frozen=True)
class CheckResult:
    kind: str
    name: str
    cases: int
    failures: tuple[Case, ...] = ()
    allowed: int = 0  # failures tolerated (the check's max_failure_rate of its cases)
    error: str = ""  # the check could not run: a failure, never a pass

    @property
    def passed(self) -> bool:
        return not self.error and len(self.failures) <= self.allowed

    def describe(self, limit: int = 3) -> str:
        """The gate reason: the check, how many cases failed, and the first ``limit`` of them."""
        head = f"behaviour {self.kind} {self.name!r}"
        if self.error:
            return f"{head} could not run: {self.error}"
        shown = "; ".join(str(case) for case in self.failures[:limit])
        more = f" (+{len(self.failures) - limit} more)" if len(self.failures) > limit else ""
        return (
            f"{head}: {len(self.failures)} of {self.cases} cases fail (allowed {self.allowed}): {shown}{more}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "passed": self.passed,
            "cases": self.cases,
            "failed": len(self.failures),
            "allowed": self.allowed,
            "examples": [str(case) for case in self.failures[:3]],
            "error": self.error,
        }


def _predict(predict_proba: PredictProba, frames: list[pd.DataFrame]) -> list[np.ndarray]:
    """One ``predict_proba`` call over every frame (stacked), split back per frame."""
    stacked = pd.concat(frames, ignore_index=True)
    proba = np.asarray(predict_proba(stacked), dtype=np.float64)
    if proba.ndim != 2 or proba.shape[0] != len(stacked):
        raise ValueError(f"predict_proba answered shape {proba.shape} for {len(stacked)} rows")
    bounds = np.cumsum([0] + [len(f) for f in frames])
    return [proba[a:b] for a, b in pairwise(bounds)]


def _sample(x: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    return x.sample(n=min(rows, len(x)), random_state=seed) if len(x) > rows else x


def _shifted(spec: ProjectSpec, x: pd.DataFrame, column: str, shift: float) -> pd.DataFrame:
    """``column`` + ``shift``, clipped to the feature's declared range (a perturbation stays a valid row)."""
    feature = spec.feature(column)
    out = x.copy()
    out[column] = (x[column] + shift).clip(lower=feature.minimum, upper=feature.maximum)
    return out


def _answer(spec: ProjectSpec, proba: np.ndarray, cls: int) -> str:
    return f"{spec.class_names[cls]} (p={proba[cls]:.3f})"


def invariance(
    spec: ProjectSpec,
    check: Invariance,
    x: pd.DataFrame,
    predict_proba: PredictProba,
    threshold: float | None,
    seed: int = 0,
) -> CheckResult:
    """Each of ``check.shifts`` on ``check.column`` of sampled rows: same class, or every class
    probability within ``check.tolerance`` when one is declared."""
    rows = _sample(x, check.rows, seed)
    variants = [_shifted(spec, rows, check.column, s) for s in check.shifts]
    base, *changed = _predict(predict_proba, [rows, *variants])
    base_cls = predict_classes(spec, base, threshold)
    failures = []
    for shift, variant, proba in zip(check.shifts, variants, changed, strict=True):
        cls = predict_classes(spec, proba, threshold)
        if check.tolerance is None:
            bad = cls != base_cls
        else:
            bad = np.max(np.abs(proba - base), axis=1) > check.tolerance
        for i in np.flatnonzero(bad).tolist():
            failures.append(
                Case(
                    rows.index[i],
                    f"{check.column} {rows[check.column].iloc[i]:g} -> {variant[check.column].iloc[i]:g}"
                    f" (shift {shift:+g})",
                    _answer(spec, base[i], int(base_cls[i])),
                    _answer(spec, proba[i], int(cls[i])),
                )
            )
    cases = len(rows) * len(check.shifts)
    allowed = int(np.floor(check.max_failure_rate * cases))
    return CheckResult("invariance", check.name, cases, tuple(failures), allowed)


def raw_invariance(
    spec: ProjectSpec,
    check: RawInvariance,
    predict_proba: PredictProba,
    threshold: float | None,
    seed: int = 0,
) -> CheckResult:
    """Raw rows from ``check.source``, and the same rows with ``check.columns`` moved one row down
    (every row gets its neighbour's identifiers), both through ``spec.prepare``: identical answers."""
    if spec.prepare is None:
        return CheckResult("raw_invariance", check.name, 0, error="the use case has no prepare step")
    raw = check.source(check.rows, seed).reset_index(drop=True)
    changed = raw.copy()
    for column in check.columns:
        changed[column] = np.roll(raw[column].to_numpy(), 1)
    frames = [to_frame(spec, spec.prepare(raw)), to_frame(spec, spec.prepare(changed))]
    base, after = _predict(predict_proba, frames)
    base_cls = predict_classes(spec, base, threshold)
    cls = predict_classes(spec, after, threshold)
    bad = (cls != base_cls) | (np.max(np.abs(after - base), axis=1) > 1e-9)
    failures = tuple(
        Case(
            int(i),
            ", ".join(f"{c} {raw[c].iloc[i]} -> {changed[c].iloc[i]}" for c in check.columns),
            _answer(spec, base[i], int(base_cls[i])),
            _answer(spec, after[i], int(cls[i])),
        )
        for i in np.flatnonzero(bad).tolist()
    )
    return CheckResult("raw_invariance", check.name, len(raw), failures)


def directional(
    spec: ProjectSpec, check: Directional, x: pd.DataFrame, predict_proba: PredictProba, seed: int = 0
) -> CheckResult:
    """Each of ``check.shifts`` on ``check.column``: class ``check.class_index``'s probability moves
    only in ``check.direction`` (beyond ``check.tolerance``)."""
    rows = _sample(x, check.rows, seed)
    variants = [_shifted(spec, rows, check.column, s) for s in check.shifts]
    base, *changed = _predict(predict_proba, [rows, *variants])
    k = check.class_index
    sign = 1.0 if check.direction == "increasing" else -1.0
    failures = []
    for shift, variant, proba in zip(check.shifts, variants, changed, strict=True):
        bad = sign * (proba[:, k] - base[:, k]) < -check.tolerance
        for i in np.flatnonzero(bad).tolist():
            failures.append(
                Case(
                    rows.index[i],
                    f"{check.column} {rows[check.column].iloc[i]:g} -> {variant[check.column].iloc[i]:g}"
                    f" (shift {shift:+g}, expected {spec.class_names[k]} {check.direction})",
                    f"p={base[i, k]:.4f}",
                    f"p={proba[i, k]:.4f}",
                )
            )
    return CheckResult("directional", check.name, len(rows) * len(check.shifts), tuple(failures))


def minimum_functionality(
    spec: ProjectSpec, check: MinimumFunctionality, predict_proba: PredictProba, threshold: float | None
) -> CheckResult:
    """The hand-labelled cases, each classified as labelled."""
    unknown = sorted({label for _, label in check.cases} - set(spec.class_names))
    if unknown:
        return CheckResult(
            "minimum_functionality", check.name, len(check.cases), error=f"unknown class {unknown}"
        )
    (proba,) = _predict(predict_proba, [to_frame(spec, [row for row, _ in check.cases])])
    got = predict_classes(spec, proba, threshold)
    failures = tuple(
        Case(i, f"labelled {label}", f"expected {label}", _answer(spec, proba[i], int(got[i])))
        for i, (_, label) in enumerate(check.cases)
        if spec.class_names[int(got[i])] != label
    )
    return CheckResult("minimum_functionality", check.name, len(check.cases), failures)


def _guarded(kind: str, name: str, check: Callable[[], CheckResult]) -> CheckResult:
    """Fail closed: a check that raises (the model cannot score a perturbed row, a raw source fails)
    is a failed check naming the error, never a pass or a traceback out of the gate."""
    try:
        return check()
    except Exception as exc:
        return CheckResult(kind, name, 0, error=f"{type(exc).__name__}: {exc}")


def run(
    spec: ProjectSpec, holdout: pd.DataFrame, predict_proba: PredictProba, threshold: float | None
) -> list[CheckResult]:
    """Every check ``spec.behaviour`` declares, on rows sampled from ``holdout`` with its seed."""
    declared, x = spec.behaviour, to_frame(spec, holdout)
    seed = declared.seed
    return [
        *(
            _guarded("invariance", c.name, partial(invariance, spec, c, x, predict_proba, threshold, seed))
            for c in declared.invariance
        ),
        *(
            _guarded(
                "raw_invariance", c.name, partial(raw_invariance, spec, c, predict_proba, threshold, seed)
            )
            for c in declared.raw_invariance
        ),
        *(
            _guarded("directional", c.name, partial(directional, spec, c, x, predict_proba, seed))
            for c in declared.directional
        ),
        *(
            _guarded(
                "minimum_functionality",
                c.name,
                partial(minimum_functionality, spec, c, predict_proba, threshold),
            )
            for c in declared.minimum_functionality
        ),
    ]
