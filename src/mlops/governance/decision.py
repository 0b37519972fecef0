"""The promotion rule, as a pure function of gate results and a paired bootstrap interval.

Two tests, one interval (``challenger - champion`` of the primary metric on the same sealed rows,
two-sided 95 %, so each bound is a one-sided 97.5 % test):

- superiority, for an automatic promotion: promote only when the lower bound exceeds the
  superiority margin (``promotion_margin``). A tie, or a gain the rows cannot tell from noise,
  keeps the champion: on a small slice an automatic promotion after the first rarely clears.
- non-inferiority, for re-validating a staged version against production: pass when the lower
  bound exceeds ``-noninferiority_margin``, so a version equal to production passes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from mlops.ml.bootstrap import Interval

Outcome = Literal["promoted", "kept", "rejected", "refused"]
Test = Literal["superiority", "non-inferiority", "none"]
# Bounds are floats from the same rows; within this of the margin is not beyond it.
EPSILON = 1e-9


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    reason: str
    metric: str
    challenger_score: float
    champion_score: float | None
    margin: float
    gate_reasons: list[str] = field(default_factory=list)
    test: Test = "none"
    noninferiority_margin: float = 0.0
    interval: Interval | None = None
    # Where the scores come from: source ("sealed" | "fresh"), fingerprint, rows, epoch, redraw.
    evidence: dict[str, Any] = field(default_factory=dict)
    # Facts of this decision kept at the top of the audit details (``champion_unservable``, ...).
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def promote(self) -> bool:
        return self.outcome == "promoted"

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {**data.pop("notes"), **data}

    def tags(self) -> dict[str, str]:
        """The few compact MLflow version tags of the statistical evidence."""
        out: dict[str, str] = {"promotion.test": self.test}
        if self.interval is not None:
            out["promotion.interval"] = f"[{self.interval.lo:+.4f}, {self.interval.hi:+.4f}]"
            out["promotion.estimate"] = f"{self.interval.estimate:+.4f}"
            out["promotion.resamples"] = str(self.interval.resamples)
        if self.evidence.get("fingerprint"):
            out["promotion.evidence"] = (
                f"{self.evidence.get('source', '')}:{self.evidence['fingerprint'][:16]}"
            )
        return out


def decide(
    *,
    metric: str,
    challenger: float,
    champion: float | None,
    margin: float,
    gate_reasons: list[str],
    interval: Interval | None = None,
    noninferiority_margin: float = 0.01,
    evidence: dict[str, Any] | None = None,
    notes: dict[str, Any] | None = None,
) -> Decision:
    """Promote only if every gate passes and, when there is a champion, the interval's lower bound
    exceeds ``margin`` (superiority). With no champion the first passing model is promoted.

    A champion without an interval cannot be judged: that is a programming error, refused loudly.
    """
    test: Test = "superiority" if champion is not None else "none"

    def verdict(outcome: Outcome, reason: str) -> Decision:
        return Decision(
            outcome,
            reason,
            metric,
            challenger,
            champion,
            margin,
            list(gate_reasons),
            test,
            noninferiority_margin,
            interval,
            dict(evidence or {}),
            dict(notes or {}),
        )

    if gate_reasons:
        return verdict("rejected", "gates failed: " + "; ".join(gate_reasons))
    if champion is None:
        return verdict("promoted", f"no champion; {metric}={challenger:.4f} passes the gates")
    if interval is None:
        raise ValueError("a decision against a champion needs the paired bootstrap interval")
    head = f"{metric} {interval.text()} vs champion, superiority margin {margin}"
    if interval.lo > margin + EPSILON:
        return verdict("promoted", f"{head}: lower bound clears it, promoted")
    return verdict("kept", f"{head}: not shown better, champion kept")


def noninferiority_reason(interval: Interval, margin: float, against: str) -> str | None:
    """None when the lower bound exceeds ``-margin``; else the reason the version is refused."""
    if interval.lo > -margin + EPSILON:
        return None
    return (
        f"{interval.metric} {interval.text()} vs {against}: lower bound not above the "
        f"non-inferiority margin -{margin}"
    )
