"""Alias moves with the control database on the machine's PostgreSQL (``pg_advisory_xact_lock``),
MLflow embedded: the same cases as tests/unit/governance/test_ledger.py. A fresh database per test;
PostgreSQL missing, it skips locally and FAILS under ``CI=true``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops.registry import Registry
from tests.support import alias_moves
from tests.support.control_db import control_databases


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ledger-pg")


@pytest.fixture
def reg(home: Path, tmp_path: Path) -> Iterator[Registry]:
    with control_databases("postgresql", tmp_path) as make:
        yield alias_moves.new_model(home, make())


def test_two_interleaved_promotions_move_the_alias_once(reg) -> None:
    alias_moves.check_interleaved_promotions(reg)


def test_a_crash_after_the_mlflow_write_is_reconciled(reg, monkeypatch) -> None:
    alias_moves.check_a_crash_after_the_mlflow_write_is_reconciled(reg, monkeypatch)


def test_a_failed_mlflow_write_is_abandoned_and_audited(reg, monkeypatch) -> None:
    alias_moves.check_a_failed_mlflow_write_is_abandoned(reg, monkeypatch)


def test_the_control_database_down_refuses_the_move_and_spools_the_refusal(reg) -> None:
    from mlops.errors import MlopsError
    from mlops.governance import ledger

    url = reg.settings.audit_db_url
    down = Registry(reg.settings.model_copy(update={"audit_db_url": url.replace(":5432/", ":1/")}), "iris")
    with pytest.raises(MlopsError, match=r"is unreachable: alias 'production' of .* not moved") as refused:
        ledger.apply(down, alias_moves.PROMOTE, version="1", alias="production", expected=None)
    assert "retry when it is back" in refused.value.hint and type(refused.value) is MlopsError
    assert reg.alias_version("production") is None  # fail closed: nothing moved
    # the database is back: the next move writes the spooled refusal first, then its own row
    ledger.apply(reg, alias_moves.PROMOTE, version="1", alias="production", expected=None)
    assert alias_moves.history(reg) == [("refused", None, "1"), ("promoted", None, "1")]
    first = ledger.audit_log(reg).history(model_name=reg.name)[0]
    assert "unreachable" in first.reason and "spooled_at" in first.details
    assert ledger.audit_log(reg).verify().ok
