"""Ground truth -> live accuracy; the Prometheus exposition with the names the dashboards use."""

from __future__ import annotations

from fastapi.testclient import TestClient
from tests.unit.serving.conftest import ADMIN, EXAMPLE, sample

from mlops.serving.app import create_app


def test_feedback_updates_live_accuracy(service_settings) -> None:
    with TestClient(create_app(service_settings)) as c:  # its own log: live accuracy starts empty
        _feedback_round(c)


def _feedback_round(client: TestClient) -> None:
    feedback = sample("mlops_feedback_total")
    request_id = client.post("/predict", json=EXAMPLE).json()["request_id"]
    r = client.post("/feedback", json={"request_id": request_id, "true_label": "setosa"}, headers=ADMIN)
    assert r.status_code == 200
    assert r.json() == {"request_id": request_id, "correct": True, "live_accuracy": 1.0}
    r = client.post("/feedback", json={"request_id": request_id, "true_label": 2}, headers=ADMIN)
    assert r.json()["correct"] is False and r.json()["live_accuracy"] == 0.5
    assert sample("mlops_live_accuracy") == 0.5 and sample("mlops_feedback_total") == feedback + 2


def test_feedback_errors(client: TestClient) -> None:
    request_id = client.post("/predict", json=EXAMPLE).json()["request_id"]
    unknown = client.post("/feedback", json={"request_id": "nope", "true_label": 0}, headers=ADMIN)
    assert unknown.status_code == 404
    for label in (7, -1, "daisy"):
        r = client.post("/feedback", json={"request_id": request_id, "true_label": label}, headers=ADMIN)
        assert r.status_code == 422
        assert r.json()["detail"][0] | {"msg": ""} == {  # the shape of every other 422
            "type": "value_error",
            "loc": ["body", "true_label"],
            "msg": "",
            "input": label,
        }
    r = client.post("/feedback", json={"request_id": request_id}, headers=ADMIN)
    assert r.status_code == 422 and "true_label" in r.text


def test_metrics_exposition(client: TestClient) -> None:
    client.post("/predict", json=EXAMPLE)
    client.post("/predict", json={})
    r = client.get("/metrics")
    assert r.status_code == 200 and r.history == [] and r.headers["content-type"].startswith("text/plain")
    text = r.text
    for line in (
        'mlops_http_requests_total{method="POST",route="/predict",status="200"}',
        'mlops_http_requests_total{method="POST",route="/predict",status="422"}',
        'mlops_http_request_duration_seconds_bucket{le="0.005",method="POST",route="/predict"}',
        'mlops_predictions_total{label="setosa",model_version="1"}',
        'mlops_model_info{alias="production",name="iris-classifier",runtime="onnx",version="1"} 1.0',
        "mlops_model_loaded 1.0",
        "mlops_registry_reachable 1.0",
        "mlops_prediction_log_queue_depth",
        "mlops_prediction_log_dropped_total",
        "mlops_prediction_log_written_total",
        "# TYPE mlops_model_swaps_total counter",
        "# TYPE mlops_retrain_jobs_total counter",
        "# TYPE mlops_feedback_total counter",
        "# TYPE mlops_live_accuracy gauge",
        "# TYPE mlops_feature_drift_score gauge",
        "# TYPE mlops_dataset_drift_share gauge",
        "# TYPE mlops_dataset_drift_detected gauge",
    ):
        assert line in text, line


def test_route_label_is_the_template(client: TestClient) -> None:
    before = sample("mlops_http_requests_total", route="/retrain/{job_id}", method="GET", status="404")
    client.get("/retrain/abc123", headers=ADMIN)
    after = sample("mlops_http_requests_total", route="/retrain/{job_id}", method="GET", status="404")
    assert after == before + 1
