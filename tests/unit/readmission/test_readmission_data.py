"""The readmission data layer: raw schema, cleaning of the real file's format, generator behaviour."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops.data import readmission as rd


def _raw_row(**overrides: str) -> dict[str, str]:
    row = {name: "No" for name in rd.MEDICATIONS}
    row.update(
        encounter_id="2278392",
        patient_nbr="8222157",
        race="Caucasian",
        gender="Female",
        age="[70-80)",
        weight="?",
        admission_type_id="1",
        discharge_disposition_id="1",
        admission_source_id="7",
        time_in_hospital="3",
        payer_code="?",
        medical_specialty="InternalMedicine",
        num_lab_procedures="41",
        num_procedures="0",
        num_medications="12",
        number_outpatient="0",
        number_emergency="0",
        number_inpatient="1",
        diag_1="428",
        diag_2="250.01",
        diag_3="?",
        number_diagnoses="9",
        max_glu_serum="None",
        A1Cresult=">8",
        change="No",
        diabetesMed="Yes",
        readmitted="NO",
    )
    row.update(overrides)
    return row


def _write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    lines = [",".join(rd.RAW_COLUMNS)] + [",".join(r[c] for c in rd.RAW_COLUMNS) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_raw_schema_has_the_50_columns_of_the_public_file() -> None:
    assert len(rd.RAW_COLUMNS) == 50 and len(set(rd.RAW_COLUMNS)) == 50
    assert rd.RAW_COLUMNS[:3] == ("encounter_id", "patient_nbr", "race")
    assert rd.RAW_COLUMNS[-3:] == ("change", "diabetesMed", "readmitted")
    raw = rd.generate(2_000, seed=3)
    assert tuple(raw.columns) == rd.RAW_COLUMNS
    assert set(raw["readmitted"].astype(str)) == {"<30", ">30", "NO"}
    assert set(raw["age"].astype(str)) <= set(rd._AGE_TO_BAND)
    assert (raw["race"].astype(str) == "?").any() and (raw["weight"].astype(str) == "?").mean() > 0.9
    assert raw["encounter_id"].is_unique and not raw["patient_nbr"].is_unique


def test_generator_is_deterministic_per_seed_and_knob() -> None:
    a, b = rd.generate(3_000, seed=7), rd.generate(3_000, seed=7)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(rd.generate(3_000, seed=8))
    assert not a.equals(rd.generate(3_000, seed=7, drift=True))


def test_generator_is_fast() -> None:
    start = time.perf_counter()
    raw = rd.generate(500_000, seed=1)
    assert len(raw) == 500_000
    assert time.perf_counter() - start < 5.0  # ~1 s per million rows on 2 cores


def test_positive_rate_is_near_the_real_eleven_percent() -> None:
    raw = rd.generate(100_000, seed=11)
    rate = float((raw["readmitted"].astype(str) == "<30").mean())
    assert 0.095 < rate < 0.125
    cleaned = rd.clean(raw)
    assert 0.09 < cleaned[rd.TARGET].mean() < 0.13


def test_risk_rises_with_prior_inpatient_stays_and_a_model_beats_chance() -> None:
    from sklearn.metrics import roc_auc_score

    from mlops.ml.model import train
    from mlops.projects.readmission import SPEC

    data = rd.clean(rd.generate(40_000, seed=5))
    by_visits = data.groupby(data["number_inpatient"].clip(upper=3))[rd.TARGET].mean()
    assert by_visits.is_monotonic_increasing and by_visits[3.0] > 2 * by_visits[0.0]
    train_rows, test_rows = data.iloc[:20_000], data.iloc[20_000:]
    model = train(SPEC, train_rows, seed=0)
    from mlops.ml.model import to_frame

    auc = roc_auc_score(test_rows[rd.TARGET], model.predict_proba(to_frame(SPEC, test_rows))[:, 1])
    assert auc > 0.66


def test_cleaning_of_the_real_file_format(tmp_path: Path) -> None:
    rows = [
        # patient 1: a later encounter listed first; only the first (lowest id) encounter is kept
        _raw_row(encounter_id="500", patient_nbr="1", readmitted="<30", number_inpatient="4"),
        _raw_row(encounter_id="100", patient_nbr="1", readmitted=">30", race="?", medical_specialty="?"),
        _raw_row(encounter_id="200", patient_nbr="2", discharge_disposition_id="11"),  # expired
        _raw_row(encounter_id="300", patient_nbr="3", gender="Unknown/Invalid"),
        _raw_row(
            encounter_id="400",
            patient_nbr="4",
            readmitted="<30",
            diag_1="V57",
            medical_specialty="Hospitalist",
            admission_type_id="6",
            discharge_disposition_id="3",
            admission_source_id="4",
            age="[10-20)",
            insulin="Up",
            change="Ch",
            max_glu_serum=">300",
            A1Cresult="None",
        ),
        _raw_row(
            encounter_id="600", patient_nbr="5", diag_1="?", medical_specialty="Telehealth", gender="Male"
        ),
        _raw_row(
            encounter_id="700", patient_nbr="6", diag_1="250.83", discharge_disposition_id="13"
        ),  # hospice
    ]
    frame = rd.load_diabetic_csv(_write_csv(tmp_path / "diabetic_data.csv", rows))
    assert list(frame.columns) == [*rd.FEATURES, rd.TARGET]
    assert len(frame) == 3  # patients 1 (first encounter), 4 and 5
    first, p4, p5 = (frame.iloc[i] for i in range(3))
    assert first["race"] == "" and first["medical_specialty"] == "Unknown" and first[rd.TARGET] == 0
    assert first["number_inpatient"] == 1.0 and first["A1Cresult"] == ">8"
    assert first["max_glu_serum"] == "not_measured" and first["diag_1_group"] == "circulatory"
    assert first["age_band"] == "70-80" and first["discharge_group"] == "home"
    assert p4[rd.TARGET] == 1 and p4["diag_1_group"] == "other" and p4["medical_specialty"] == "Other"
    assert p4["admission_type"] == "unknown" and p4["discharge_group"] == "snf"
    assert p4["admission_source"] == "transfer" and p4["age_band"] == "0-40"
    assert p4["A1Cresult"] == "not_measured" and p4["max_glu_serum"] == ">300"
    assert p4["n_active_meds"] == 1.0 and p4["n_med_changes"] == 1.0 and p4["insulin"] == "Up"
    assert p5["diag_1_group"] == "" and p5["medical_specialty"] == "Telehealth" and p5["gender"] == "Male"
    # Missing categoricals are "" (never None/NaN); numerics are floats.
    for name in rd.CATEGORICAL_FEATURES:
        assert all(isinstance(v, str) for v in frame[name]), name
    assert frame[list(rd.NUMERIC_FEATURES)].dtypes.eq("float64").all()


def test_features_keep_every_row_and_accept_feature_frames() -> None:
    raw = rd.generate(1_000, seed=2)
    feats = rd.features(raw)
    assert len(feats) == len(raw) and list(feats.columns) == list(rd.FEATURES)
    assert feats.isna().sum().sum() == 0
    pd.testing.assert_frame_equal(rd.features(feats), feats)


def test_the_spec_schema_accepts_generated_and_drifted_data() -> None:
    from mlops.data.validation import data_reasons
    from mlops.projects.readmission import SPEC

    assert data_reasons(SPEC, rd.clean(rd.generate(5_000, seed=1))) == []
    drifted = rd.features(rd.generate(5_000, seed=1, drift=True))
    assert data_reasons(SPEC, drifted, with_target=False, batch=True) == []  # drift, not a broken file
    assert set(rd.DRIFT_SPECIALTIES) <= set(drifted["medical_specialty"])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_write_streams_chunks_in_either_format(tmp_path: Path, suffix: str) -> None:
    path = rd.write(tmp_path / f"rows{suffix}", 2_500, seed=4, drift=True, chunk_rows=1_000)
    back = rd.read_raw(path)
    assert len(back) == 2_500 and tuple(back.columns) == rd.RAW_COLUMNS
    expected = pd.concat(
        [rd.generate(n, seed=4, drift=True, start=s) for s, n in ((0, 1_000), (1_000, 1_000), (2_000, 500))],
        ignore_index=True,
    )
    assert back["encounter_id"].astype("int64").is_unique
    pd.testing.assert_frame_equal(rd.clean(back), rd.clean(expected))
    assert np.isclose(rd.clean(back)[rd.TARGET].mean(), rd.clean(expected)[rd.TARGET].mean())
