"""The monitoring pipeline on readmission: drifted input flagged, clean input not, result recorded."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.pipeline


def test_drift_pipeline_flags_the_drift_knob_and_records_it(settings, tmp_path) -> None:
    from tests.support.training import train_register_promote

    from mlops.configure import configure_libraries
    from mlops.data.readmission.generator import write
    from mlops.governance.promote import manual_promote
    from mlops.projects import get_project
    from mlops.runner import run_monitoring
    from mlops.stores.drift import latest_drift

    configure_libraries(settings)
    trained = train_register_promote(settings, "readmission")
    assert trained["promotion"]["alias"] == "staging"
    manual_promote(settings, get_project("readmission"), "1", to="production", reason="test", approver="qa")

    drifted = write(tmp_path / "drifted.parquet", 3_000, seed=11, drift=True)
    clean = write(tmp_path / "clean.parquet", 3_000, seed=12)
    flagged = run_monitoring(settings, "readmission", alias="production", source=drifted, window=3_000)
    assert flagged["detected"] and flagged["share"] >= settings.drift_share_threshold
    assert "medical_specialty" in [n for n, f in flagged["features"].items() if f["drifted"]]
    quiet = run_monitoring(settings, "readmission", alias="production", source=clean, window=3_000)
    assert not quiet["detected"]

    latest = latest_drift(settings.prediction_log_db_url, "readmission")
    assert latest is not None and latest["detected"] is False and latest["model_version"] == "1"
    assert set(latest["features"]) == set(get_project("readmission").feature_names)
    from pathlib import Path

    assert Path(flagged["report_path"]).read_text().lstrip().lower().startswith("<!doctype html")
