"""The promotion rule, as a pure function of scores and gate results."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Outcome = Literal["promoted", "kept", "rejected"]
# Scores are floats from the same holdout; differences below this are ties, not gains (0.92 - 0.90 > 0.02).
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

    @property
    def promote(self) -> bool:
        return self.outcome == "promoted"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide(
    *,
    metric: str,
    challenger: float,
    champion: float | None,
    margin: float,
    gate_reasons: list[str],
    higher_is_better: bool = True,
) -> Decision:
    """Promote only if every gate passes and the challenger beats the champion by more than ``margin``.

    Both scores must come from the same holdout. A tie (or a gain within the margin) keeps the
    champion; with no champion the first passing model is promoted.
    """

    def verdict(outcome: Outcome, reason: str) -> Decision:
        return Decision(outcome, reason, metric, challenger, champion, margin, list(gate_reasons))

    if gate_reasons:
        return verdict("rejected", "gates failed: " + "; ".join(gate_reasons))
    if champion is None:
        return verdict("promoted", f"no champion; {metric}={challenger:.4f} passes the gates")
    gain = (challenger - champion) if higher_is_better else (champion - challenger)
    if gain > margin + EPSILON:
        return verdict(
            "promoted",
            f"{metric} {challenger:.4f} beats champion {champion:.4f} by {gain:+.4f} (> margin {margin})",
        )
    relation = (
        "ties" if abs(gain) <= EPSILON else ("is within the margin of" if gain > 0 else "is worse than")
    )
    return verdict(
        "kept",
        f"{metric} {challenger:.4f} {relation} champion {champion:.4f} (margin {margin}); champion kept",
    )
