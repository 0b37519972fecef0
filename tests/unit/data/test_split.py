"""Holdout splits and dataset fingerprints (mlops.data.split)."""

from __future__ import annotations

from mlops.data.split import fingerprint, split


def test_split_is_seeded_and_stratified(settings, iris_spec) -> None:
    frame = iris_spec.load(settings)
    _, a_hold = split(frame, "species", 0.3, 42)
    _, b_hold = split(frame, "species", 0.3, 42)
    _, c_hold = split(frame, "species", 0.3, 43)
    assert fingerprint(a_hold) == fingerprint(b_hold) != fingerprint(c_hold)
    assert len(a_hold) == 45 and sorted(a_hold["species"].value_counts().tolist()) == [15, 15, 15]
