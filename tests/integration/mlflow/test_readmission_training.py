"""The readmission use case end to end: generated data → gates → registry → staging, ONNX parity."""

from __future__ import annotations


def test_readmission_trains_into_staging_with_onnx_parity(settings) -> None:
    from mlops.configure import configure_libraries
    from mlops.projects import get_project
    from tests.support.training import train_register_promote

    spec = get_project("readmission")
    configure_libraries(settings)
    result = train_register_promote(settings, "readmission")
    metrics = result["metrics"]
    for name, minimum in spec.model_gate.minimums.items():
        assert metrics[name] >= minimum, name
    assert metrics["roc_auc"] > 0.66
    assert result["onnx_parity"]["ok"] and result["onnx_parity"]["class_agreement"] == 1.0
    assert result["promotion"]["alias"] == "staging"
