"""The service in-process (ASGI): a real model in a temporary MLflow registry, a real SQLite log."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from tests.support.serving import ADMIN, EXAMPLE, SERVICE, sample

from mlops.serving.app import create_app

__all__ = ["ADMIN", "EXAMPLE", "SERVICE", "sample"]  # imported by the tests of this folder


@pytest.fixture
def service_settings(settings, registered_iris):
    """Settings of a service over its own fresh registry (for tests that change the registry)."""
    return settings.model_copy(update=SERVICE)


@pytest.fixture(scope="session")
def shared_settings(tmp_path_factory: pytest.TempPathFactory):
    """One registry with one promoted iris model, shared by the tests that only read it."""
    from tests.support.training import train_register_promote

    from mlops.configure import configure_libraries
    from mlops.settings import Settings

    settings = Settings(home=tmp_path_factory.mktemp("serving") / "state", actor="pytest", **SERVICE)
    configure_libraries(settings)
    train_register_promote(settings, "iris")
    # No background poll: apps of other tests share this process's metrics. No model cache: an app
    # of an earlier test would fill it, and a later one would start from it instead of the registry.
    return settings.model_copy(update={"poll_interval_s": 3600.0, "model_cache": False})


@pytest.fixture(scope="module")
def client(shared_settings) -> Iterator[TestClient]:
    with TestClient(create_app(shared_settings)) as c:
        yield c
