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
