"""Alias moves through ``ledger`` on the embedded default (SQLite control database, SQLite MLflow):
a forced interleaving of two promotions moves the alias once; a crash after the MLflow write is
reconciled into the missing audit row; a failed MLflow write is abandoned, audited."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support import alias_moves

from mlops.errors import AliasConflict
from mlops.governance import ledger


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ledger")  # one MLflow database for the module (created once: ~10 s)


@pytest.fixture
def reg(home: Path, tmp_path: Path):
    return alias_moves.new_model(home, f"sqlite:///{tmp_path / 'audit.db'}")


def test_two_interleaved_promotions_move_the_alias_once(reg) -> None:
    alias_moves.check_interleaved_promotions(reg)


def test_a_crash_after_the_mlflow_write_is_reconciled(reg, monkeypatch) -> None:
    alias_moves.check_a_crash_after_the_mlflow_write_is_reconciled(reg, monkeypatch)


def test_a_failed_mlflow_write_is_abandoned_and_audited(reg, monkeypatch) -> None:
    alias_moves.check_a_failed_mlflow_write_is_abandoned(reg, monkeypatch)


def test_a_stale_expectation_is_refused_and_audited(reg) -> None:
    ledger.apply(reg, alias_moves.PROMOTE, version="1", alias="staging", expected=None)
    with pytest.raises(AliasConflict, match="moved from None to 1"):
        ledger.move(
            reg, alias="staging", expected=None, new="2", decision=alias_moves.PROMOTE, action="rollback"
        )
    assert reg.alias_version("staging") == "1"
    assert alias_moves.history(reg) == [("promoted", None, "1"), ("refused", None, "2")]


def test_a_crash_trace_is_reconciled_after_a_later_move(reg, monkeypatch) -> None:
    alias_moves.check_a_crash_trace_is_reconciled_after_a_later_move(reg, monkeypatch)
