"""Test isolation: every session gets its own state folder and ZenML config, never the user's."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
    # The user's MLOPS_* settings must not leak into tests; the suite's own switches stay.
    keep = {"MLOPS_HOME", "MLOPS_RELIABILITY_FULL", "MLOPS_RELIABILITY_OUT"}
    for key in [k for k in os.environ if k.startswith("MLOPS_") and k not in keep]:
        del os.environ[key]


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_SESSION_ROOT, ignore_errors=True)


@pytest.fixture(autouse=True)
def _restore_environment() -> Iterator[None]:
    """Entry points run in-process here (the CLI, the app factory, the runner) and their one
    ``configure_libraries`` writes the process environment: each test starts from the session's."""
    before = dict(os.environ)
    yield
    if os.environ != before:
        os.environ.clear()
        os.environ.update(before)


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
    from mlops.configure import configure_libraries
    from tests.support.training import train_register_promote

    configure_libraries(settings)
    return train_register_promote(settings, "iris")


@pytest.fixture
def corrupt_version() -> Callable[..., list[Path]]:
    """``corrupt_version(settings, project, version)`` overwrites the stored model files of a registered
    version (ONNX and skops model) with garbage, as a bad upload or a damaged bucket would; returns
    the files it broke. Works on file-backed artifact stores (the embedded default and the tests)."""

    def corrupt(settings: Any, project: str, version: str) -> list[Path]:
        from urllib.parse import unquote, urlparse

        from mlops.registry import Registry

        registry = Registry(settings, project)
        source = registry.client.get_model_version(registry.name, version).source
        model_id = source.removeprefix("models:/").split("/")[0]
        root = Path(unquote(urlparse(registry.client.get_logged_model(model_id).artifact_location).path))
        broken = [f for f in root.rglob("*") if f.suffix in {".onnx", ".skops", ".pkl"} and f.is_file()]
        assert broken, f"no model files under {root}"
        for f in broken:
            f.write_bytes(b"\x00not a model\xff" * 8)
        return broken

    return corrupt
