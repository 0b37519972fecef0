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


def _rows(frame, columns) -> set[int]:
    from mlops.data.split import row_hashes

    return set(row_hashes(frame, columns).tolist())


def test_sealed_rows_never_reach_a_training_or_validation_split(settings, iris_spec) -> None:
    """Whatever the seed, no sealed row (by content hash) is in the train, holdout or threshold split."""
    from mlops.data.split import seal

    columns = [*iris_spec.feature_names, iris_spec.target]
    frame = iris_spec.load(settings)
    rest, sealed = seal(frame, columns, 0.2)
    assert 15 <= len(sealed) <= 45 and len(rest) + len(sealed) == len(frame)
    sealed_rows = _rows(sealed, columns)
    for seed in (0, 7, 42):
        train, holdout = split(rest, iris_spec.target, 0.3, seed)
        fit, valid = split(train, iris_spec.target, 0.2, seed)  # the threshold-tuning split
        for part in (train, holdout, fit, valid):
            assert not (_rows(part, columns) & sealed_rows)


def test_the_same_rows_stay_sealed_in_any_order_and_another_epoch_seals_others(settings, iris_spec) -> None:
    from mlops.data.split import seal

    columns = [*iris_spec.feature_names, iris_spec.target]
    frame = iris_spec.load(settings)
    _, sealed = seal(frame, columns, 0.2)
    _, shuffled = seal(frame.sample(frac=1.0, random_state=3), columns, 0.2)
    assert _rows(sealed, columns) == _rows(shuffled, columns)
    _, next_epoch = seal(frame, columns, 0.2, epoch=1)
    assert _rows(next_epoch, columns) != _rows(sealed, columns)


def test_subsample_is_stratified_and_seeded(settings, iris_spec) -> None:
    from mlops.data.split import subsample

    frame = iris_spec.load(settings)
    part = subsample(frame, "species", 0.2, 1)
    assert len(part) == 30 and sorted(part["species"].value_counts().tolist()) == [10, 10, 10]
    assert fingerprint(part) == fingerprint(subsample(frame, "species", 0.2, 1))
    assert subsample(frame, "species", 1.0, 1) is frame
