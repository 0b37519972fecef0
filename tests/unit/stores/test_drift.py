"""Drift results in SQL: appended, and the latest check of a project read back without Evidently."""

from __future__ import annotations

from pathlib import Path

from mlops.monitoring.drift import DriftResult
from mlops.stores.drift import latest_drift, record_drift


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
