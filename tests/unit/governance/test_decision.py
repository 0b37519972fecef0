"""The promotion rule as a pure function: every branch the issue names."""

from __future__ import annotations

import pytest

from mlops.governance.decision import decide


def rule(challenger: float, champion: float | None, *, margin: float = 0.0, gates: list[str] | None = None):
    return decide(
        metric="f1_macro", challenger=challenger, champion=champion, margin=margin, gate_reasons=gates or []
    )


def test_no_champion_promotes_first_passing_model() -> None:
    d = rule(0.9, None)
    assert d.outcome == "promoted" and "no champion" in d.reason


def test_better_challenger_is_promoted() -> None:
    d = rule(0.95, 0.90)
    assert d.outcome == "promoted"
    assert d.challenger_score == 0.95 and d.champion_score == 0.90


def test_worse_challenger_keeps_champion() -> None:
    d = rule(0.85, 0.90)
    assert d.outcome == "kept" and "worse" in d.reason


def test_tie_keeps_champion() -> None:
    d = rule(0.9, 0.9)
    assert d.outcome == "kept" and "ties" in d.reason


@pytest.mark.parametrize(("challenger", "outcome"), [(0.905, "kept"), (0.92, "kept"), (0.921, "promoted")])
def test_margin_must_be_exceeded(challenger: float, outcome: str) -> None:
    assert rule(challenger, 0.90, margin=0.02).outcome == outcome


def test_failed_gate_rejects_even_a_better_model() -> None:
    d = rule(0.99, 0.5, gates=["accuracy 0.1 is below the minimum 0.8"])
    assert d.outcome == "rejected"
    assert d.gate_reasons == ["accuracy 0.1 is below the minimum 0.8"]


def test_failed_gate_rejects_without_champion() -> None:
    assert rule(0.99, None, gates=["x"]).outcome == "rejected"


def test_lower_is_better_metrics() -> None:
    better = decide(
        metric="log_loss", challenger=0.1, champion=0.2, margin=0.0, gate_reasons=[], higher_is_better=False
    )
    worse = decide(
        metric="log_loss", challenger=0.3, champion=0.2, margin=0.0, gate_reasons=[], higher_is_better=False
    )
    assert (better.outcome, worse.outcome) == ("promoted", "kept")
