"""No code from the registry runs on the decision or serving path (issue 11, item 8), over a real registry.

Each attack is first shown to work where MLflow is trusted to load (``mlflow.sklearn.load_model``
with pickle deserialization allowed: the marker file appears), then refused by the two loaders of
the project: ``runtime.load_checked`` (the servable check of promotion and of the service's model
manager, which serves ONNX yet checks the native file too) and ``Registry.load_native`` (promotion's
scoring). The marker is never written by either.
"""

from __future__ import annotations

import asyncio
import pickle
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlops import runtime
from mlops.ml import trust
from mlops.registry import Registry
from mlops.serving.model_manager import ModelManager
from tests.support.training import train_register_promote


class WritesOnUnpickle:
    """A pickle payload: unpickling calls ``Path(marker).write_text(...)``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.write_text, (self.marker, "code ran"))


class WritesOnSkopsLoad:
    """A type skops rebuilds with ``__setstate__``: trusting it runs this method on load."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __setstate__(self, state: dict[str, Any]) -> None:
        Path(state["marker"]).write_text("code ran")
        self.__dict__.update(state)


def _model_dir(registry: Registry, version: str) -> Path:
    return Path(
        registry.client.get_model_version_download_uri(registry.name, version).removeprefix("file://")
    )


def _edit_flavor(model_dir: Path, **changes: Any) -> None:
    meta = yaml.safe_load((model_dir / "MLmodel").read_text())
    meta["flavors"]["sklearn"].update(changes)
    (model_dir / "MLmodel").write_text(yaml.safe_dump(meta))


def _mlflow_would_run_it(model_dir: Path, marker: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The attack is real: MLflow's own loader, with deserialization allowed, writes the marker."""
    import mlflow.sklearn

    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true")
    mlflow.sklearn.load_model(str(model_dir))
    assert marker.exists()
    marker.unlink()
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")


def _both_loaders_refuse(settings: Any, registry: Registry, marker: Path, reason: str) -> None:
    with pytest.raises(trust.UntrustedModel, match=reason):
        runtime.load_checked(settings, "iris", "1")  # ONNX parity holds: the native file is checked too
    with pytest.raises(trust.UntrustedModel, match=reason):
        registry.load_native("1")
    # the service's model manager, through the same check: the version is rejected, nothing serves
    state = asyncio.run(ModelManager(settings, "iris", "production").check(patient=True))
    assert state["rejected_versions"] == ["1"] and not state["model_loaded"]
    assert "UntrustedModel" in state["last_error"]
    assert not marker.exists()


def test_a_malicious_pickle_is_refused_and_never_runs(
    settings, registered_iris, tmp_path, monkeypatch
) -> None:
    registry = Registry(settings, "iris")
    assert registry.version("1").onnx_parity
    model_dir, marker = _model_dir(registry, "1"), tmp_path / "pwned"
    (model_dir / "model.pkl").write_bytes(pickle.dumps(WritesOnUnpickle(marker)))
    _edit_flavor(model_dir, serialization_format="cloudpickle", pickled_model="model.pkl")
    _mlflow_would_run_it(model_dir, marker, monkeypatch)
    _both_loaders_refuse(settings, registry, marker, "saved as 'cloudpickle'")


def test_a_type_the_mlmodel_file_trusts_is_refused_unless_on_our_list(
    settings, registered_iris, tmp_path, monkeypatch
) -> None:
    import skops.io

    registry = Registry(settings, "iris")
    model_dir, marker = _model_dir(registry, "1"), tmp_path / "pwned"
    skops.io.dump(WritesOnSkopsLoad(marker), model_dir / "model.skops")
    dangerous = f"{__name__}.WritesOnSkopsLoad"
    _edit_flavor(model_dir, skops_trusted_types=[*trust.TRUSTED_TYPES, dangerous])
    _mlflow_would_run_it(model_dir, marker, monkeypatch)
    _both_loaders_refuse(settings, registry, marker, "outside our allow-list")
    with pytest.raises(trust.UntrustedModel) as refused:
        registry.verify_native("1")
    assert refused.value.reasons == [dangerous]


def test_a_trusted_version_loads_natively_without_mlflow_deserializing(settings, registered_iris) -> None:
    """The project's own versions load while MLflow refuses every deserialization itself."""
    import os

    assert os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"  # configure_libraries forced it
    model = runtime.load_checked(settings, "iris", "1")
    native = Registry(settings, "iris").load_native("1")
    assert model.runtime == "onnx" and type(native).__name__ == "Pipeline"
    meta = yaml.safe_load((_model_dir(Registry(settings, "iris"), "1") / "MLmodel").read_text())
    assert meta["flavors"]["sklearn"]["serialization_format"] == "skops"


def test_an_altered_onnx_file_refuses_the_version(settings, registered_iris) -> None:
    """Another valid ONNX model put in place of the registered one: no fallback, the version is refused."""
    registry = Registry(settings, "iris")
    info = registry.version("1")
    onnx_path = _model_dir(registry, "1") / "extra_files" / "model.onnx"
    assert info.tags["onnx_sha256"] == trust.sha256(onnx_path.read_bytes())
    other = train_register_promote(settings, "iris", seed=5)["model"]["version"]
    onnx_path.write_bytes((_model_dir(registry, other) / "extra_files" / "model.onnx").read_bytes())
    with pytest.raises(trust.UntrustedModel, match="altered after registration"):
        runtime.load_checked(settings, "iris", "1")
    with pytest.raises(trust.UntrustedModel, match="altered after registration"):  # the batch engines' read
        runtime.onnx_file(settings, "iris", "1", info.tags["onnx_sha256"])
    assert runtime.load(settings, "iris", "1", prefer_onnx=False).runtime == "native"  # skops file untouched


def test_an_onnx_file_without_a_recorded_digest_is_refused(settings, registered_iris) -> None:
    registry = Registry(settings, "iris")
    registry.client.delete_model_version_tag(registry.name, "1", "onnx_sha256")
    with pytest.raises(trust.UntrustedModel, match="no recorded sha256"):
        runtime.load(settings, "iris", "1")
