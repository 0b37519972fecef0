"""Tests across the MLflow boundary: models trained into a real MLflow registry (SQLite in the
test's temporary folder), then promoted, served or reloaded. Not unit tests (each trains at least
one model), so they are marked ``integration`` and stay out of ``make test-fast``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.serving import SERVICE


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def service_settings(settings, registered_iris):
    """Settings of a service over its own fresh registry, holding one promoted iris model."""
    return settings.model_copy(update=SERVICE)
