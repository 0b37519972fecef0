"""The model card shows the promotion evidence: the sealed slice, the rule, the last interval."""

from __future__ import annotations

from datetime import UTC, datetime

from mlops.governance.model_card import render
from mlops.stores.audit import AuditEvent


def test_the_card_names_the_sealed_slice_and_each_decisions_interval(iris_spec) -> None:
    tags = {
        "sealed_fingerprint": "ab" * 32,
        "sealed_rows": "33",
        "sealed_epoch": "0",
        "promotion.test": "superiority",
        "promotion.estimate": "+0.0303",
        "promotion.interval": "[-0.0303, +0.0909]",
        "promotion.resamples": "2000",
    }
    decision = AuditEvent(
        action="promote",
        project="iris",
        model_name="iris-classifier",
        decision="kept",
        reason="f1_macro +0.0303 [95% CI -0.0303, +0.0909], superiority margin 0.0: champion kept",
        actor="pytest",
        alias="production",
        to_version="2",
        details={"evidence": {"source": "sealed", "rows": 33}, "interval": {"lo": -0.0303, "hi": 0.0909}},
        at=datetime(2026, 12, 1, tzinfo=UTC),
    )
    card = render(iris_spec, name="iris-classifier", version="2", tags=tags, metrics={}, decisions=[decision])
    assert "sealed governance slice: `abababababababab` (33 rows, epoch 0)" in card
    assert "superiority, estimate +0.0303, 95 % interval [-0.0303, +0.0909], 2000 resamples" in card
    assert "| sealed 33 rows, [-0.0303, +0.0909] |" in card
