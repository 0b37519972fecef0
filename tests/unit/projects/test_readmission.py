"""The readmission use case's spec (mlops.projects.readmission) agrees with its data module."""

from __future__ import annotations


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
