"""The sealed slice's epoch, replayed from the audit log: redrawn after too many decisions or after drift."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlops.governance.sealed import carve
from mlops.stores.audit import AuditEvent, AuditLog


def _read(settings, evidence: dict[str, Any]) -> None:
    """One decision that read the slice, as the ledger records it (``details.evidence``)."""
    AuditLog(settings.audit_url).record(
        AuditEvent(
            action="promote",
            project="iris",
            model_name="iris-classifier",
            decision="kept",
            reason="test",
            actor="pytest",
            details={"evidence": evidence},
        )
    )


@dataclass
class _Drift:
    rows: int = 100
    share: float = 0.75
    detected: bool = True
    features: dict[str, Any] = field(
        default_factory=lambda: {"petal_length": {"score": 0.9, "drifted": True}}
    )


def test_the_slice_is_stable_until_it_has_been_read_too_often(settings, iris_spec) -> None:
    frame = iris_spec.load(settings)
    few = settings.model_copy(update={"sealed_max_decisions": 3})
    rest, first = carve(few, iris_spec, frame)
    assert (first.epoch, first.redrawn, len(rest) + first.rows) == (0, "", len(frame))
    for _ in range(2):
        _read(few, first.evidence())
    assert carve(few, iris_spec, frame)[1].fingerprint == first.fingerprint
    _read(few, first.evidence())
    _, second = carve(few, iris_spec, frame)
    assert second.epoch == 1 and second.fingerprint != first.fingerprint
    assert "3 decisions read slice" in second.redrawn
    assert second.evidence()["sealed_redrawn"] == second.redrawn
    _read(few, second.evidence())  # the new epoch is now the one the log replays
    _, again = carve(few, iris_spec, frame)
    assert (again.epoch, again.fingerprint, again.redrawn) == (1, second.fingerprint, "")


def test_drift_after_the_slice_was_first_used_redraws_it(settings, iris_spec) -> None:
    from mlops.stores.drift import record_drift

    frame = iris_spec.load(settings)
    _, first = carve(settings, iris_spec, frame)
    record_drift(settings.prediction_log_db_url, "iris", _Drift(), model_version="1", reference_hash="x")
    assert carve(settings, iris_spec, frame)[1].epoch == 0  # drift before any decision read it: kept
    _read(settings, first.evidence())
    record_drift(settings.prediction_log_db_url, "iris", _Drift(), model_version="1", reference_hash="x")
    _, redrawn = carve(settings, iris_spec, frame)
    assert redrawn.epoch == 1 and "drift detected" in redrawn.redrawn
