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


def test_readmission_declares_its_behaviour_on_real_columns() -> None:
    """Every declared check names a feature (or a raw column) that exists, and the monotone feature
    the gate checks is the one the model declares."""
    from mlops.data.readmission import vocabulary
    from mlops.projects import get_project
    from mlops.projects.readmission import MONOTONE_INCREASING

    spec = get_project("readmission")
    declared = spec.behaviour
    assert [c.column for c in declared.invariance] == ["num_lab_procedures"]
    assert [c.column for c in declared.directional] == list(MONOTONE_INCREASING) == ["number_inpatient"]
    assert all(c.class_index == spec.positive_class for c in declared.directional)
    (ids,) = declared.raw_invariance
    assert set(ids.columns) == {"encounter_id", "patient_nbr"} <= set(vocabulary.RAW_COLUMNS)
    assert not set(ids.columns) & set(spec.feature_names)
    raw = ids.source(5, 0)
    assert list(raw.columns) == list(vocabulary.RAW_COLUMNS) and len(raw) == 5
    model = spec.build_model(spec, 0)
    assert model[-1].monotonic_cst == {"number_inpatient": 1}
