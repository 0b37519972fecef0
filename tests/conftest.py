"""Test isolation: every session gets its own state folder and ZenML config, never the user's."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_SESSION_ROOT = Path(tempfile.mkdtemp(prefix="mlops-tests-"))


def pytest_configure(config: pytest.Config) -> None:
    # Before any test module imports zenml or mlflow.
    os.environ["MLOPS_HOME"] = str(_SESSION_ROOT / "state")
    os.environ["ZENML_CONFIG_PATH"] = str(_SESSION_ROOT / "state" / "zenml")
    os.environ["ZENML_ANALYTICS_OPT_IN"] = "false"
    os.environ["ZENML_LOGGING_VERBOSITY"] = "WARN"
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["DO_NOT_TRACK"] = "true"
    for key in [k for k in os.environ if k.startswith("MLOPS_") and k != "MLOPS_HOME"]:
        del os.environ[key]


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_SESSION_ROOT, ignore_errors=True)


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator:
    """Settings whose state (MLflow, audit, prediction log) lives in this test's tmp folder."""
    from mlops.settings import Settings, get_settings

    monkeypatch.setenv("MLOPS_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("MLOPS_ACTOR", "pytest")
    get_settings.cache_clear()
    yield Settings()
    get_settings.cache_clear()


@pytest.fixture
def iris_spec():
    from mlops.projects import get_project

    return get_project("iris")


@pytest.fixture
def registered_iris(settings):
    """A real registered, promoted iris model in this test's temporary MLflow registry."""
    from mlops.lifecycle import train_register_promote
    from mlops.settings import apply_environment

    apply_environment(settings)
    return train_register_promote(settings, "iris")
