"""The behavioural checks run inside the real training pipeline's evaluate_model step and are
recorded as its metadata (ZenML), beside the metrics."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.pipeline


def test_evaluate_model_records_the_behaviour_checks(settings) -> None:
    from zenml.client import Client

    from mlops.runner import run_training

    result = run_training(settings, "iris")
    assert result["status"] == "completed"
    step = Client().get_pipeline_run(result["zenml_run_id"]).steps["evaluate_model"]
    (check,) = step.run_metadata["behaviour"]
    assert check["kind"] == "minimum_functionality" and check["name"] == "typical flowers"
    assert check["passed"] is True and check["cases"] == 6 and check["failed"] == 0
