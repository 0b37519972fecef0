"""Readmission end to end: the pipeline trains into staging, an approved promotion reaches production,
the service serves the generated schema, and a prediction traces back to its ZenML run and data."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

pytestmark = pytest.mark.pipeline


def test_train_promote_serve_and_trace_a_prediction(settings) -> None:
    from mlops.errors import PromotionRefused
    from mlops.governance.model_card import refresh as refresh_model_card
    from mlops.governance.promote import manual_promote, rollback
    from mlops.lineage import for_request
    from mlops.projects import get_project
    from mlops.registry import Registry
    from mlops.runner import run_training
    from mlops.serving.app import create_app

    spec = get_project("readmission")
    result = run_training(settings, "readmission")
    assert result["promotion"]["outcome"] == "promoted" and result["promotion"]["alias"] == "staging"
    reg = Registry(settings, "readmission")
    assert reg.aliases() == {"staging": "1"} and reg.threshold("1") is not None
    assert reg.version("1").onnx_parity
    with pytest.raises(PromotionRefused, match="approver"):
        manual_promote(settings, spec, "1", to="production", reason="release")
    event = manual_promote(settings, spec, "1", to="production", reason="clinical review", approver="dr.ana")
    assert event.details["approver"] == "dr.ana" and reg.alias_version("production") == "1"

    service = settings.model_copy(update={"project": "readmission"})
    with TestClient(create_app(service)) as client:
        schema = client.get("/openapi.json").json()["components"]["schemas"]["ReadmissionFeatures"]
        assert set(schema["properties"]) == set(spec.feature_names)
        response = client.post("/predict", json=spec.example)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model_version"] == "1" and body["label"] in spec.class_names
        bad = client.post("/predict", json={**spec.example, "gender": "robot"})
        assert bad.status_code == 422 and "gender" in bad.text
    chain = for_request(settings, body["request_id"])  # the log was drained at shutdown
    assert chain["prediction"]["request_id"] == body["request_id"]
    for link in ("mlflow_run", "zenml_run", "dataset", "holdout"):
        assert chain[link]["resolved"], link
    assert chain["zenml_run"]["id"] == result["zenml_run_id"]

    with pytest.raises(PromotionRefused):  # nothing earlier in production to go back to
        rollback(settings, spec)
    card = refresh_model_card(reg, "1")
    assert "dr.ana" in card and "## Per-group metrics" in card
