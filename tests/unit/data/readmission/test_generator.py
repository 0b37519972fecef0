"""The synthetic generator: raw schema, determinism (byte-identical to the pre-split module), speed,
realistic marginals and signal, chunked writing, and its tables as a package data file."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops.data.readmission import cleaning
from mlops.data.readmission import vocabulary as vocab
from mlops.data.readmission.generator import generate, tables, write


def test_raw_schema_has_the_50_columns_of_the_public_file() -> None:
    assert len(vocab.RAW_COLUMNS) == 50 and len(set(vocab.RAW_COLUMNS)) == 50
    assert vocab.RAW_COLUMNS[:3] == ("encounter_id", "patient_nbr", "race")
    assert vocab.RAW_COLUMNS[-3:] == ("change", "diabetesMed", "readmitted")
    raw = generate(2_000, seed=3)
    assert tuple(raw.columns) == vocab.RAW_COLUMNS
    assert set(raw["readmitted"].astype(str)) == {"<30", ">30", "NO"}
    assert set(raw["age"].astype(str)) <= set(cleaning.AGE_TO_BAND)
    assert (raw["race"].astype(str) == "?").any() and (raw["weight"].astype(str) == "?").mean() > 0.9
    assert raw["encounter_id"].is_unique and not raw["patient_nbr"].is_unique


def test_generator_is_deterministic_per_seed_and_knob() -> None:
    a, b = generate(3_000, seed=7), generate(3_000, seed=7)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(generate(3_000, seed=8))
    assert not a.equals(generate(3_000, seed=7, drift=True))


def test_generator_is_fast() -> None:
    start = time.perf_counter()
    raw = generate(500_000, seed=1)
    assert len(raw) == 500_000
    assert time.perf_counter() - start < 5.0  # ~1 s per million rows on 2 cores


def test_positive_rate_is_near_the_real_eleven_percent() -> None:
    raw = generate(100_000, seed=11)
    rate = float((raw["readmitted"].astype(str) == "<30").mean())
    assert 0.095 < rate < 0.125
    cleaned = cleaning.clean(raw)
    assert 0.09 < cleaned[vocab.TARGET].mean() < 0.13


def test_risk_rises_with_prior_inpatient_stays_and_a_model_beats_chance() -> None:
    from sklearn.metrics import roc_auc_score

    from mlops.ml.model import train
    from mlops.projects.readmission import SPEC

    data = cleaning.clean(generate(40_000, seed=5))
    by_visits = data.groupby(data["number_inpatient"].clip(upper=3))[vocab.TARGET].mean()
    assert by_visits.is_monotonic_increasing and by_visits[3.0] > 2 * by_visits[0.0]
    train_rows, test_rows = data.iloc[:20_000], data.iloc[20_000:]
    model = train(SPEC, train_rows, seed=0)
    from mlops.ml.model import to_frame

    auc = roc_auc_score(test_rows[vocab.TARGET], model.predict_proba(to_frame(SPEC, test_rows))[:, 1])
    assert auc > 0.66


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_write_streams_chunks_in_either_format(tmp_path: Path, suffix: str) -> None:
    path = write(tmp_path / f"rows{suffix}", 2_500, seed=4, drift=True, chunk_rows=1_000)
    back = cleaning.read_raw(path)
    assert len(back) == 2_500 and tuple(back.columns) == vocab.RAW_COLUMNS
    expected = pd.concat(
        [generate(n, seed=4, drift=True, start=s) for s, n in ((0, 1_000), (1_000, 1_000), (2_000, 500))],
        ignore_index=True,
    )
    assert back["encounter_id"].astype("int64").is_unique
    pd.testing.assert_frame_equal(cleaning.clean(back), cleaning.clean(expected))
    assert np.isclose(
        cleaning.clean(back)[vocab.TARGET].mean(), cleaning.clean(expected)[vocab.TARGET].mean()
    )


def _digest(frame: pd.DataFrame) -> str:
    """Every byte of a generated frame: column names and dtypes, categories in order, codes, values."""
    h = hashlib.sha256(repr(list(frame.columns)).encode())
    for name, col in frame.items():
        h.update(f"{name}:{col.dtype}".encode())
        if isinstance(col.dtype, pd.CategoricalDtype):
            h.update(repr(list(col.cat.categories)).encode())
            h.update(col.cat.codes.to_numpy().tobytes())
        elif col.dtype == object:
            h.update(repr(col.tolist()).encode())
        else:
            h.update(col.to_numpy().tobytes())
    return h.hexdigest()


# Digests of ``generate`` (and of ``clean`` of it) computed with the single-module generator of
# commit 343c736, before its probability tables moved to tables.json: same seed, same bytes.
PRE_SPLIT_DIGESTS = [
    (
        (1_000, 0, False, 0),
        "7c2fb47163bdc5d07db92195e3938dac87fd4c28c0b0779292c595a7a5642796",
        "4dbe9481ec2b55c4dffe9552914ed79c98a4fd85daa9cef6f39131d54c082d6e",
    ),
    (
        (5_000, 7, True, 0),
        "ccb50b411fdf2f48f713c8948cd17afa738455b98c5fc4dd461082ddf4c9ebff",
        "cafbb24c44aeb2dc343791851e78ee3848f707ce4ebbe182e2a0bc4e2d2afec7",
    ),
    (
        (3_000, 3, False, 4_000),
        "979b9de5cf2b5ea834b1a98295eb253d0fb90df9e76343695400ba9bb065199d",
        "01ef758fd89d1a509d738e416b214d1a7a2ee03eea4cd96ef880271cc3bc0009",
    ),
    (
        (0, 1, True, 0),
        "bedc9d3667f81c1b7760db2f16369bd8fc3265071ab889862f0efd7d54937b46",
        "3911670abce2ef0f44ddd5890cd8a21aef67dbc2c4fc75401ac66e6b6722907c",
    ),
]


@pytest.mark.parametrize(("args", "raw_digest", "clean_digest"), PRE_SPLIT_DIGESTS)
def test_generated_data_is_byte_identical_to_the_pre_split_generator(args, raw_digest, clean_digest) -> None:
    rows, seed, drift, start = args
    raw = generate(rows, seed, drift, start=start)
    assert len(raw) == rows
    assert _digest(raw) == raw_digest
    assert _digest(cleaning.clean(raw)) == clean_digest


def test_written_csv_is_byte_identical_to_the_pre_split_generator(tmp_path: Path) -> None:
    path = write(tmp_path / "rows.csv", 2_500, seed=5, drift=True, chunk_rows=1_000)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == "7cdc3397b972f78c5fe5080a321b3fa25a07bac735417c47bf7195e7cd7c9870"


def test_tables_are_a_package_data_file_read_once() -> None:
    import json
    from importlib import resources

    text = resources.files("mlops.data.readmission").joinpath("tables.json").read_text(encoding="utf-8")
    on_disk = json.loads(text)
    t = tables()
    assert tables() is t  # cached: read once per process
    assert list(t.race) == list(on_disk["race"]) and t.race["Caucasian"] == on_disk["race"]["Caucasian"]
    assert all(isinstance(k, int) for k in t.discharge_disposition_id)  # ids are ints again
    assert set(t.medication_states) <= set(vocab.MEDICATIONS)
    assert len(t.time_in_hospital) == 14  # 1..14 days
    # every categorical marginal is a distribution (the rounded real shares sum to ~1)
    for name in ("race", "gender", "age", "age_drift", "weight", "medical_specialty", "diag_group"):
        assert sum(getattr(t, name).values()) == pytest.approx(1.0, abs=0.02), name
    assert set(t.diag_codes) == set(t.diag_group) == set(vocab.DIAG_GROUPS)
