"""The app's shape: every endpoint documented, and no ZenML in the service process."""

from __future__ import annotations

import os
import subprocess
import sys

from fastapi.testclient import TestClient
from tests.unit.serving.conftest import EXAMPLE


def test_model_info_health_and_ready(client: TestClient) -> None:
    info = client.get("/model/info").json()
    assert info["runtime"] == "onnx" and info["version"] == "1" and info["alias"] == "production"
    assert info["name"] == "iris-classifier" and info["mlflow_run_id"] and info["trained_at"]
    assert "f1_macro" in info["metrics"]
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["model_loaded"] and ready.json()["registry_reachable"]


def test_openapi_lists_every_endpoint_with_schemas(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {
        "/predict",
        "/predict/batch",
        "/health",
        "/ready",
        "/model/info",
        "/metrics",
        "/retrain",
        "/retrain/{job_id}",
        "/reload",
        "/feedback",
    } <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    assert set(schemas["IrisFeatures"]["properties"]) == set(EXAMPLE)
    assert schemas["IrisFeatures"]["additionalProperties"] is False
    assert {"Prediction", "BatchPrediction", "ModelInfo", "RetrainJob", "Feedback"} <= set(schemas)
    assert client.get("/docs").status_code == 200


def test_service_does_not_import_zenml(shared_settings) -> None:
    code = (
        "import sys\n"
        "from fastapi.testclient import TestClient\n"
        "from mlops.serving.app import create_app\n"
        "with TestClient(create_app()) as c:\n"
        f"    assert c.post('/predict', json={EXAMPLE!r}).status_code == 200\n"
        "    assert c.get('/model/info').status_code == 200\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'zenml', 'evidently'}))\n"
    )
    env = {**os.environ, "MLOPS_HOME": str(shared_settings.home)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
