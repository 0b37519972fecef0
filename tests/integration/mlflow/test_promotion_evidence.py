"""Which rows a manual promotion is re-validated on: an operator's newer file, else the sealed slice."""

from __future__ import annotations

from mlops.governance.promote import manual_promote
from mlops.registry import Registry
from tests.support.training import train_register_promote


def test_an_operators_newer_file_is_fresh_evidence(settings, registered_iris, iris_spec, tmp_path) -> None:
    train_register_promote(settings, "iris")  # version 2
    newer = iris_spec.load(settings)
    features = iris_spec.feature_names
    newer[features] = (newer[features] + 0.05).round(2)  # remeasured flowers: rows no version trained on
    source = tmp_path / "newer.csv"
    newer.to_csv(source, index=False)
    event = manual_promote(
        settings, iris_spec, "2", to="production", reason="release", approver="ana", data_path=source
    )
    assert event.details["evidence_source"] == "fresh"
    assert event.details["evidence"]["rows"] == len(newer) and event.details["test"] == "non-inferiority"
    assert "fresh rows" in event.reason and "vs production" in event.reason
    assert Registry(settings, "iris").alias_version("production") == "2"


def test_the_same_file_as_training_falls_back_to_the_versions_sealed_slice(
    settings, registered_iris, iris_spec, tmp_path
) -> None:
    train_register_promote(settings, "iris")  # version 2
    source = tmp_path / "same.csv"
    iris_spec.load(settings).to_csv(source, index=False)
    event = manual_promote(
        settings, iris_spec, "2", to="production", reason="release", approver="ana", data_path=source
    )
    assert event.details["evidence_source"] == "sealed"
    reg = Registry(settings, "iris")
    assert event.details["evidence"]["fingerprint"] == reg.version("2").tags["sealed_fingerprint"]
