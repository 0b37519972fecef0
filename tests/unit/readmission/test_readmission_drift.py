"""Drift detection with real Evidently on generated data."""

from __future__ import annotations

import pytest

from mlops.data.readmission.cleaning import clean
from mlops.data.readmission.generator import generate
from mlops.monitoring.drift import detect_drift


@pytest.fixture(scope="module")
def spec():
    from mlops.projects.readmission import SPEC

    return SPEC


@pytest.fixture(scope="module")
def reference() -> object:
    return clean(generate(6_000, seed=1))


def test_the_drift_knob_is_flagged(spec, reference) -> None:
    current = generate(2_000, seed=2, drift=True)  # raw rows: detect_drift applies spec.prepare
    result = detect_drift(spec, reference, current)
    assert result.detected and result.share >= 0.3
    drifted = set(result.drifted_features)
    assert {"time_in_hospital", "num_lab_procedures", "number_inpatient", "medical_specialty"} <= drifted
    assert set(result.features) == set(spec.feature_names)
    assert all({"score", "drifted", "method"} <= set(f) for f in result.features.values())
    assert result.rows == 2_000 and result.reference_rows == len(reference)
    assert "<html" in result.html.lower()


def test_same_population_is_not_flagged(spec, reference) -> None:
    result = detect_drift(spec, reference, clean(generate(2_000, seed=3)))
    assert not result.detected and result.share < 0.1


def test_drift_rejects_empty_windows(spec, reference) -> None:
    with pytest.raises(ValueError):
        detect_drift(spec, reference, reference.iloc[:0])
