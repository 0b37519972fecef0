"""Drift detection with real Evidently on generated data, and the drift history store."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops.data.readmission.cleaning import clean
from mlops.data.readmission.generator import generate
from mlops.monitoring.drift import DriftResult, detect_drift
from mlops.monitoring.store import latest_drift, record_drift


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


def test_latest_drift_round_trip_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state' / 'drift.db'}"
    assert latest_drift(url, "readmission") is None
    first = DriftResult(
        share=0.1,
        detected=False,
        features={"age_band": {"score": 0.02, "drifted": False, "method": "Jensen-Shannon distance"}},
        rows=100,
    )
    second = DriftResult(
        share=0.5,
        detected=True,
        features={
            "age_band": {"score": 0.2, "drifted": True, "method": "Jensen-Shannon distance"},
            "time_in_hospital": {"score": 0.05, "drifted": False, "method": "Wasserstein distance (normed)"},
        },
        rows=250,
    )
    id1 = record_drift(
        url, "readmission", first, model_version="1", reference_hash="abc", report_path="r1.html"
    )
    id2 = record_drift(
        url, "readmission", second, model_version="2", reference_hash="abc", report_path="r2.html"
    )
    record_drift(url, "iris", first, model_version="7", reference_hash="x", report_path="")
    assert id2 > id1
    latest = latest_drift(url, "readmission")
    assert latest is not None
    assert latest["share"] == 0.5 and latest["detected"] is True and latest["model_version"] == "2"
    assert latest["features"] == {"age_band": 0.2, "time_in_hospital": 0.05}
    assert latest["drifted_features"] == ["age_band"] and latest["current_rows"] == 250
    assert latest["at"].endswith("+00:00") and latest["report_path"] == "r2.html"
    assert latest_drift(url, "iris")["model_version"] == "7"  # type: ignore[index]
