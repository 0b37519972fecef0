"""GET /metrics (mlops.serving.routes.prometheus): the exposition with the names the dashboards use."""

from __future__ import annotations

from fastapi.testclient import TestClient
from tests.support.serving import ADMIN, EXAMPLE, sample


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
        "# TYPE mlops_live_labelled gauge",
        "# TYPE mlops_feedback_labels_total counter",
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
