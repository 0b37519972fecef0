"""The service in-process (ASGI): a real model in a temporary MLflow registry, a real SQLite log."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from pydantic import SecretStr

from mlops.serving.app import create_app

EXAMPLE = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
ADMIN = {"X-API-Key": "admin-test-key"}


def sample(metric: str, **labels: str) -> float:
    """A metric's current value in this process (metrics are process-wide: compare deltas)."""
    return REGISTRY.get_sample_value(metric, labels) or 0.0


SERVICE = {"admin_api_key": SecretStr("admin-test-key"), "max_batch_rows": 50}


@pytest.fixture
def service_settings(settings, registered_iris):
    """Settings of a service over its own fresh registry (for tests that change the registry)."""
    return settings.model_copy(update=SERVICE)


@pytest.fixture(scope="session")
def shared_settings(tmp_path_factory: pytest.TempPathFactory):
    """One registry with one promoted iris model, shared by the tests that only read it."""
    from mlops.configure import configure_libraries
    from mlops.lifecycle import train_register_promote
    from mlops.settings import Settings

    settings = Settings(home=tmp_path_factory.mktemp("serving") / "state", actor="pytest", **SERVICE)
    configure_libraries(settings)
    train_register_promote(settings, "iris")
    # No background poll: apps of other tests share this process's metrics.
    return settings.model_copy(update={"poll_interval_s": 3600.0})


@pytest.fixture(scope="module")
def client(shared_settings) -> Iterator[TestClient]:
    with TestClient(create_app(shared_settings)) as c:
        yield c
