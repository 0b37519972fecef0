"""The readmission vocabulary: the feature list is defined once, and the use case uses it."""

from __future__ import annotations

from mlops.data.readmission import vocabulary as vocab


def test_the_feature_list_is_the_use_cases() -> None:
    from mlops.projects.readmission import SPEC

    assert SPEC.features is vocab.FEATURES
    assert tuple(SPEC.feature_names) == vocab.FEATURE_NAMES
    assert tuple(SPEC.numeric_features) == vocab.NUMERIC_FEATURES
    assert tuple(SPEC.categorical_features) == vocab.CATEGORICAL_FEATURES
    assert SPEC.target == vocab.TARGET


def test_feature_names_are_unique_and_partitioned() -> None:
    names = vocab.FEATURE_NAMES
    assert len(names) == len(set(names)) == 24
    assert set(vocab.NUMERIC_FEATURES) | set(vocab.CATEGORICAL_FEATURES) == set(names)
    assert not set(vocab.NUMERIC_FEATURES) & set(vocab.CATEGORICAL_FEATURES)
    # the numerics read as they are come from the raw file; the medication counts do not
    assert set(vocab.COUNT_FEATURES) <= set(vocab.RAW_COLUMNS)
    assert vocab.COUNT_FEATURES + vocab.MEDICATION_COUNTS == vocab.NUMERIC_FEATURES
    assert not set(vocab.MEDICATION_COUNTS) & set(vocab.RAW_COLUMNS)


def test_closed_categoricals_and_their_missing_level() -> None:
    by_name = {f.name: f for f in vocab.FEATURES}
    for f in vocab.FEATURES:
        if f.kind == "categorical" and f.name != "medical_specialty":
            assert f.categories, f.name  # closed: the gate rejects a level the mapping cannot produce
            assert ("" in f.categories) == f.nullable, f.name
    assert by_name["medical_specialty"].categories == ()  # open: new specialties are drift, not errors
    assert by_name["race"].categories[:-1] == vocab.RACES
    assert by_name["time_in_hospital"].minimum == 1 and by_name["time_in_hospital"].maximum == 14
    assert not set(vocab.TOP_SPECIALTIES) & set(vocab.TAIL_SPECIALTIES)
    assert not set(vocab.DRIFT_SPECIALTIES) & (set(vocab.TOP_SPECIALTIES) | set(vocab.TAIL_SPECIALTIES))
