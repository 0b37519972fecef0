from __future__ import annotations

import pytest
import sqlalchemy as sa

from mlops.stores.audit import AuditEvent, AuditLog


def event(**kw) -> AuditEvent:
    base = {
        "action": "promote",
        "project": "iris",
        "model_name": "iris-classifier",
        "decision": "promoted",
        "reason": "r",
        "actor": "me",
        "alias": "production",
        "to_version": "1",
    }
    return AuditEvent(**{**base, **kw})


def test_records_in_order_with_details(tmp_path) -> None:
    log = AuditLog(f"sqlite:///{tmp_path / 'a.db'}")
    log.record(event(details={"metrics": {"f1": 0.9}}))
    log.record(event(to_version="2", decision="kept"))
    rows = log.history(model_name="iris-classifier")
    assert [(r.id, r.to_version, r.decision) for r in rows] == [(1, "1", "promoted"), (2, "2", "kept")]
    assert rows[0].details == {"metrics": {"f1": 0.9}}
    assert rows[0].at.tzinfo is not None


def test_sqlite_table_is_append_only(tmp_path) -> None:
    log = AuditLog(f"sqlite:///{tmp_path / 'a.db'}")
    log.record(event())
    for statement in ("UPDATE audit_log SET reason = 'forged'", "DELETE FROM audit_log"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"), log.engine.begin() as conn:
            conn.exec_driver_sql(statement)
    assert log.history()[0].reason == "r"
