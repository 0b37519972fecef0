"""Alias moves against a real MLflow registry and a real control database (SQLite or Postgres):
the bodies of tests/unit/governance/test_ledger.py and tests/integration/test_alias_lock_postgres.py."""

from __future__ import annotations

import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mlops.errors import AliasConflict
from mlops.governance import ledger
from mlops.governance.decision import Decision
from mlops.registry import Registry
from mlops.settings import Settings
from mlops.stores.tables import alias_intents

PROMOTE = Decision("promoted", "challenger wins", "f1", 0.95, 0.9, 0.0)


def new_model(home: Path, audit_url: str, versions: int = 3) -> Registry:
    """A registered model of its own (a fresh name) with ``versions`` versions, each with a run."""
    settings = Settings(
        home=home, audit_db_url=audit_url, actor="pytest", model_name=f"m-{uuid.uuid4().hex[:8]}"
    )
    reg = Registry(settings, "iris")
    client = reg.client
    client.create_registered_model(reg.name)
    experiment = client.get_experiment_by_name("ledger-tests")
    exp_id = experiment.experiment_id if experiment else client.create_experiment("ledger-tests")
    source = tempfile.mkdtemp(prefix="model-", dir=home)
    for _ in range(versions):
        run = client.create_run(exp_id)
        client.create_model_version(reg.name, source=source, run_id=run.info.run_id)
    return reg


def intents(reg: Registry) -> list[tuple[str, str, str | None]]:
    engine = ledger.audit_log(reg).engine
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(alias_intents)
            .where(alias_intents.c.model_name == reg.name)
            .order_by(alias_intents.c.id)
        )
        return [(r.new, r.state, r.audit_seq) for r in rows]


def history(reg: Registry) -> list[tuple[Any, ...]]:
    return [
        (e.decision, e.from_version, e.to_version) for e in ledger.audit_log(reg).history(model_name=reg.name)
    ]


def check_interleaved_promotions(reg: Registry) -> None:
    """Two promotions of one alias, the first paused right after its re-read while the second runs:
    the second waits on the lock, then finds the alias moved: exactly one moves it."""
    ledger.apply(reg, PROMOTE, version="1", alias="production", expected=None)
    outcome: dict[str, Any] = {}

    def second() -> None:
        try:
            outcome["second"] = ledger.apply(
                Registry(reg.settings, "iris"), PROMOTE, version="3", alias="production", expected="1"
            )
        except AliasConflict as exc:
            outcome["second"] = exc

    other = threading.Thread(target=second)

    def pause() -> None:  # the first has re-read "1"; the second now tries to move the same alias
        other.start()
        other.join(timeout=1.5)
        outcome["second_waited"] = other.is_alive()

    first = ledger.apply(reg, PROMOTE, version="2", alias="production", expected="1", after_reread=pause)
    other.join(timeout=60)
    assert outcome["second_waited"], "the second promotion did not wait for the lock"
    assert isinstance(outcome["second"], AliasConflict), outcome
    assert first.decision == "promoted" and reg.alias_version("production") == "2"
    assert history(reg) == [("promoted", None, "1"), ("promoted", "1", "2"), ("refused", "1", "3")]
    refused = ledger.audit_log(reg).history(model_name=reg.name)[-1]
    assert refused.details["current"] == "2" and "moved from 1 to 2" in refused.reason
    assert [(new, state) for new, state, _ in intents(reg)] == [("1", "done"), ("2", "done")]
    log = ledger.audit_log(reg)
    assert log.verify(ledger.external_heads(reg)).ok
    assert ledger.external_heads(reg) == [f"{log.head()[0]}:{log.head()[1]}"]


def check_a_crash_after_the_mlflow_write_is_reconciled(
    reg: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The alias moved but the process died before its audit row: the pending intent is what is left,
    and the next move writes the missing row."""
    from mlflow.exceptions import MlflowException

    monkeypatch.setattr(ledger, "STALE_INTENT_S", 0.0)
    ledger.apply(reg, PROMOTE, version="1", alias="production", expected=None)

    def dies(*_a: Any, **_k: Any) -> None:
        raise MlflowException("connection reset by peer")

    monkeypatch.setattr(reg.client, "set_model_version_tag", dies)  # fails right after the alias write
    with pytest.raises(MlflowException):
        ledger.apply(reg, PROMOTE, version="2", alias="production", expected="1")
    monkeypatch.undo()
    monkeypatch.setattr(ledger, "STALE_INTENT_S", 0.0)
    assert reg.alias_version("production") == "2"
    assert history(reg) == [("promoted", None, "1")]  # the move is not in the log...
    assert intents(reg)[-1][:2] == ("2", "pending")  # ...but its intent is
    events = ledger.reconcile_intents(reg)
    assert [(e.decision, e.to_version, e.reason) for e in events] == [
        ("promoted", "2", "reconciled after an interrupted promotion")
    ]
    assert intents(reg)[-1] == ("2", "done", events[0].seq)
    assert ledger.reconcile_intents(reg) == []
    assert ledger.audit_log(reg).verify().ok


def check_a_failed_mlflow_write_is_abandoned(reg: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.exceptions import MlflowException

    monkeypatch.setattr(ledger, "STALE_INTENT_S", 0.0)

    def refuses(*_a: Any, **_k: Any) -> None:
        raise MlflowException("registry unavailable")

    monkeypatch.setattr(reg.client, "set_registered_model_alias", refuses)
    with pytest.raises(MlflowException):
        ledger.apply(reg, PROMOTE, version="1", alias="production", expected=None)
    monkeypatch.undo()
    monkeypatch.setattr(ledger, "STALE_INTENT_S", 0.0)
    assert reg.alias_version("production") is None and intents(reg)[-1][:2] == ("1", "pending")
    # the next move reconciles first (abandoned: the alias never moved), then moves
    event = ledger.apply(reg, PROMOTE, version="2", alias="production", expected=None)
    assert event.decision == "promoted" and reg.alias_version("production") == "2"
    assert history(reg) == [("abandoned", None, "1"), ("promoted", None, "2")]
    assert [state for _, state, _ in intents(reg)] == ["abandoned", "done"]


def check_a_crash_trace_is_reconciled_after_a_later_move(
    reg: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite leaves a fresh pending intent alone (it may be a live move); when a later move has
    already moved the alias on, the trace is still recognised as a move that happened."""
    from mlflow.exceptions import MlflowException

    ledger.apply(reg, PROMOTE, version="1", alias="production", expected=None)

    def dies(*_a: Any, **_k: Any) -> None:
        raise MlflowException("connection reset by peer")

    monkeypatch.setattr(reg.client, "set_model_version_tag", dies)
    with pytest.raises(MlflowException):
        ledger.apply(reg, PROMOTE, version="2", alias="production", expected="1")
    monkeypatch.undo()
    ledger.apply(reg, PROMOTE, version="3", alias="production", expected="2")  # the trace is fresh: left
    assert [state for _, state, _ in intents(reg)] == ["done", "pending", "done"]
    monkeypatch.setattr(ledger, "STALE_INTENT_S", 0.0)
    events = ledger.reconcile_intents(reg)
    assert [(e.decision, e.from_version, e.to_version) for e in events] == [("promoted", "1", "2")]
    assert [state for _, state, _ in intents(reg)] == ["done", "done", "done"]
    assert ledger.audit_log(reg).verify().ok
