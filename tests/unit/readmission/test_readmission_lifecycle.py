"""The readmission use case end to end: generated data → gates → registry → staging, ONNX parity."""

from __future__ import annotations


def test_readmission_trains_into_staging_with_onnx_parity(settings) -> None:
    from mlops.lifecycle import train_register_promote
    from mlops.projects import get_project
    from mlops.settings import apply_environment

    spec = get_project("readmission")
    apply_environment(settings)
    result = train_register_promote(settings, "readmission")
    metrics = result["metrics"]
    for name, minimum in spec.model_gate.minimums.items():
        assert metrics[name] >= minimum, name
    assert metrics["roc_auc"] > 0.66
    assert result["onnx_parity"]["ok"] and result["onnx_parity"]["class_agreement"] == 1.0
    assert result["promotion"]["alias"] == "staging"


def test_readmission_spec_is_consistent() -> None:
    from mlops.data.readmission import cleaning, vocabulary
    from mlops.projects import get_project

    spec = get_project("readmission")
    assert spec.feature_names == list(vocabulary.FEATURE_NAMES) and spec.target == vocabulary.TARGET
    assert set(spec.example) == set(spec.feature_names)
    assert spec.is_binary and spec.positive_class == 1 and spec.promotion_target == "staging"
    assert set(spec.model_gate.sensitive_features) <= set(spec.categorical_features)
    for f in spec.features:
        if f.kind == "categorical" and f.categories:
            assert spec.example[f.name] in f.categories, f.name
    assert spec.prepare is cleaning.features
