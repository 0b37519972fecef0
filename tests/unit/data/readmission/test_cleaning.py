"""Cleaning of the real file's format into features and target, and the gate on the result."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlops.data.readmission import cleaning
from mlops.data.readmission import vocabulary as vocab
from mlops.data.readmission.generator import generate


def _raw_row(**overrides: str) -> dict[str, str]:
    row = {name: "No" for name in vocab.MEDICATIONS}
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
    lines = [",".join(vocab.RAW_COLUMNS)] + [",".join(r[c] for c in vocab.RAW_COLUMNS) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


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
    frame = cleaning.load_diabetic_csv(_write_csv(tmp_path / "diabetic_data.csv", rows))
    assert list(frame.columns) == [*vocab.FEATURE_NAMES, vocab.TARGET]
    assert len(frame) == 3  # patients 1 (first encounter), 4 and 5
    first, p4, p5 = (frame.iloc[i] for i in range(3))
    assert first["race"] == "" and first["medical_specialty"] == "Unknown" and first[vocab.TARGET] == 0
    assert first["number_inpatient"] == 1.0 and first["A1Cresult"] == ">8"
    assert first["max_glu_serum"] == "not_measured" and first["diag_1_group"] == "circulatory"
    assert first["age_band"] == "70-80" and first["discharge_group"] == "home"
    assert p4[vocab.TARGET] == 1 and p4["diag_1_group"] == "other" and p4["medical_specialty"] == "Other"
    assert p4["admission_type"] == "unknown" and p4["discharge_group"] == "snf"
    assert p4["admission_source"] == "transfer" and p4["age_band"] == "0-40"
    assert p4["A1Cresult"] == "not_measured" and p4["max_glu_serum"] == ">300"
    assert p4["n_active_meds"] == 1.0 and p4["n_med_changes"] == 1.0 and p4["insulin"] == "Up"
    assert p5["diag_1_group"] == "" and p5["medical_specialty"] == "Telehealth" and p5["gender"] == "Male"
    # Missing categoricals are "" (never None/NaN); numerics are floats.
    for name in vocab.CATEGORICAL_FEATURES:
        assert all(isinstance(v, str) for v in frame[name]), name
    assert frame[list(vocab.NUMERIC_FEATURES)].dtypes.eq("float64").all()


def test_features_keep_every_row_and_accept_feature_frames() -> None:
    raw = generate(1_000, seed=2)
    feats = cleaning.features(raw)
    assert len(feats) == len(raw) and list(feats.columns) == list(vocab.FEATURE_NAMES)
    assert feats.isna().sum().sum() == 0
    pd.testing.assert_frame_equal(cleaning.features(feats), feats)


def test_the_spec_schema_accepts_generated_and_drifted_data() -> None:
    from mlops.governance.gates import data_reasons
    from mlops.projects.readmission import SPEC

    assert data_reasons(SPEC, cleaning.clean(generate(5_000, seed=1))) == []
    drifted = cleaning.features(generate(5_000, seed=1, drift=True))
    assert data_reasons(SPEC, drifted, with_target=False, batch=True) == []  # drift, not a broken file
    assert set(vocab.DRIFT_SPECIALTIES) <= set(drifted["medical_specialty"])
