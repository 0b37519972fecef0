"""The model manager (mlops.serving.model_manager) over a real registry: swap on an alias move, survive a
registry outage, reject broken versions."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from fastapi.testclient import TestClient

from mlops.registry import Registry
from mlops.serving import model_manager
from mlops.serving.app import create_app
from tests.integration.processes import free_port
from tests.support.serving import ADMIN, EXAMPLE, sample
from tests.support.training import train_register_promote


def test_not_ready_without_a_production_model(settings) -> None:
    with TestClient(create_app(settings)) as c:  # empty registry
        r = c.get("/ready")
        assert r.status_code == 503 and r.json()["model_loaded"] is False
        assert "production" in r.json()["last_error"]
        assert c.post("/predict", json=EXAMPLE).status_code == 503
        assert c.get("/health").status_code == 200


def test_alias_move_swaps_the_model(service_settings) -> None:
    with TestClient(create_app(service_settings)) as c:
        swaps = sample("mlops_model_swaps_total", result="success")
        train_register_promote(service_settings, "iris", seed=7)  # version 2 (may or may not win)
        reg = Registry(service_settings, "iris")
        reg.move_alias("production", expected=reg.alias_version("production"), new="2")
        state = c.post("/reload", headers=ADMIN).json()
        assert state["model_version"] == "2" and state["registry_reachable"]
        assert c.post("/predict", json=EXAMPLE).json()["model_version"] == "2"
        assert sample("mlops_model_swaps_total", result="success") == swaps + 1
        assert sample("mlops_model_info", name=reg.name, version="2", alias="production", runtime="onnx") == 1
        assert sample("mlops_model_info", name=reg.name, version="1", alias="production", runtime="onnx") == 0


def test_registry_down_keeps_serving_and_says_so(service_settings, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with TestClient(create_app(service_settings)) as c:
        # The same manager, now pointed at a registry it cannot reach.
        unreachable = service_settings.model_copy(update={"tracking_uri": f"http://127.0.0.1:{free_port()}"})
        c.app.state.manager._registry = Registry(unreachable, "iris")
        state = c.post("/reload", headers=ADMIN).json()
        assert state["registry_reachable"] is False and state["model_version"] == "1"
        assert c.post("/predict", json=EXAMPLE).status_code == 200
        ready = c.get("/ready")
        assert ready.status_code == 200 and ready.json()["registry_reachable"] is False
        assert sample("mlops_registry_reachable") == 0
        assert sample("mlops_model_loaded") == 1


def test_a_hanging_registry_is_reported_unreachable_within_the_resolve_timeout(
    service_settings, monkeypatch
) -> None:
    """A registry that accepts connections and never answers (a partition, a frozen server) used to
    read as reachable for ~50 s, until the MLflow client's timeouts and retries ran out."""
    monkeypatch.setattr(model_manager, "RESOLVE_TIMEOUT_S", 0.5)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    with socket.create_server(("127.0.0.1", 0)) as silent, TestClient(create_app(service_settings)) as c:
        hanging = service_settings.model_copy(
            update={"tracking_uri": f"http://127.0.0.1:{silent.getsockname()[1]}"}
        )
        c.app.state.manager._registry = Registry(hanging, "iris")
        for _ in range(2):  # the second check waits on the same hanging call, it does not add one
            started = time.monotonic()
            state = c.post("/reload", headers=ADMIN).json()
            assert time.monotonic() - started < 2.5, "the check waited for the MLflow client's timeout"
            assert state["registry_reachable"] is False and "did not answer" in state["last_error"]
        assert c.post("/predict", json=EXAMPLE).json()["model_version"] == "1"
        assert sample("mlops_registry_reachable") == 0


def test_corrupt_new_version_is_rejected_and_old_one_keeps_serving(service_settings) -> None:
    train_register_promote(service_settings, "iris", seed=3)  # version 2
    reg = Registry(service_settings, "iris")
    reg.tag_version("2", {"onnx_parity": "false"})  # force the native loader...
    model_dir = Path(reg.client.get_model_version_download_uri(reg.name, "2").removeprefix("file://"))
    (model_dir / "model.skops").write_bytes(b"not a model")  # ...onto a corrupt file
    with TestClient(create_app(service_settings)) as c:
        rejected = sample("mlops_model_swaps_total", result="rejected")
        reg.client.set_registered_model_alias(reg.name, "production", "2")
        state = c.post("/reload", headers=ADMIN).json()
        assert state["model_version"] == "1" and state["rejected_versions"] == ["2"]
        assert "version 2 rejected" in state["last_error"]
        assert c.post("/predict", json=EXAMPLE).json()["model_version"] == "1"
        assert sample("mlops_model_swaps_total", result="rejected") == rejected + 1
        c.post("/reload", headers=ADMIN)  # not retried while the alias stays on it
        assert sample("mlops_model_swaps_total", result="rejected") == rejected + 1


def test_native_runtime_when_onnx_parity_failed(service_settings) -> None:
    reg = Registry(service_settings, "iris")
    reg.tag_version("1", {"onnx_parity": "false"})
    with TestClient(create_app(service_settings)) as c:
        assert c.get("/model/info").json()["runtime"] == "native"
        body = c.post("/predict", json=EXAMPLE).json()
        assert body["label"] == "setosa" and body["model_version"] == "1"


def test_drift_gauges_refresh_on_their_own_slower_cadence(service_settings, monkeypatch) -> None:
    """The alias is polled every second; the drift store is read every DRIFT_REFRESH_S only."""
    from mlops.monitoring.drift import DriftResult
    from mlops.serving import model_manager
    from mlops.stores.drift import record_drift

    def record(share: float) -> None:
        result = DriftResult(share=share, detected=share > 0.3, features={}, rows=10)
        record_drift(
            service_settings.prediction_log_db_url, "iris", result, model_version="1", reference_hash="x"
        )

    record(0.1)
    with TestClient(create_app(service_settings)) as c:
        assert sample("mlops_dataset_drift_share") == 0.1  # read once at start
        record(0.5)
        c.post("/reload", headers=ADMIN)  # an alias check within the drift cadence
        assert sample("mlops_dataset_drift_share") == 0.1
        monkeypatch.setattr(model_manager, "DRIFT_REFRESH_S", 0.0)  # the cadence has elapsed
        c.post("/reload", headers=ADMIN)
        assert sample("mlops_dataset_drift_share") == 0.5 and sample("mlops_dataset_drift_detected") == 1
