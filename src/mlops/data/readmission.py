"""Diabetes 130-US hospitals 1999-2008 (``diabetic_data.csv``): cleaning, features and a generator.

The public file has 50 columns, one row per inpatient encounter of a diabetic patient, ``?`` as its
missing marker and the target ``readmitted`` in {``<30``, ``>30``, ``NO``}. This module

- cleans the real file the documented way (Strack et al., 2014): ``?`` is missing; the ID columns
  and the mostly empty ``weight`` and ``payer_code`` are dropped; encounters that ended in death or
  hospice (discharge dispositions 11, 13, 14, 19, 20, 21) are dropped, since those patients cannot
  be readmitted; the 3 rows with gender ``Unknown/Invalid`` are dropped; only the first encounter of
  each patient is kept, so the rows are independent;
- maps the raw columns to a compact feature set (``features``, also the ``prepare`` of the use case,
  so batch inputs in the raw format score directly) and the binary target (1 = ``<30``);
- generates rows with the same raw schema (``generate``/``write``), deterministic per seed and
  vectorised, with realistic marginals, real signal and a drift knob, because the machines that run
  the demo and the tests cannot download the real file.

Missing categoricals become ``""`` (never ``None``/NaN), which the model pipeline and the ONNX
export both represent. ``A1Cresult``/``max_glu_serum`` "None" means "not measured" in the file, an
informative level of its own: it becomes ``"not_measured"``. A missing ``medical_specialty`` (about
half of the real rows) becomes ``"Unknown"`` for the same reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

MEDICATIONS: tuple[str, ...] = (
    "metformin",
    "repaglinide",
    "nateglinide",
    "chlorpropamide",
    "glimepiride",
    "acetohexamide",
    "glipizide",
    "glyburide",
    "tolbutamide",
    "pioglitazone",
    "rosiglitazone",
    "acarbose",
    "miglitol",
    "troglitazone",
    "tolazamide",
    "examide",
    "citoglipton",
    "insulin",
    "glyburide-metformin",
    "glipizide-metformin",
    "glimepiride-pioglitazone",
    "metformin-rosiglitazone",
    "metformin-pioglitazone",
)

RAW_COLUMNS: tuple[str, ...] = (
    "encounter_id",
    "patient_nbr",
    "race",
    "gender",
    "age",
    "weight",
    "admission_type_id",
    "discharge_disposition_id",
    "admission_source_id",
    "time_in_hospital",
    "payer_code",
    "medical_specialty",
    "num_lab_procedures",
    "num_procedures",
    "num_medications",
    "number_outpatient",
    "number_emergency",
    "number_inpatient",
    "diag_1",
    "diag_2",
    "diag_3",
    "number_diagnoses",
    "max_glu_serum",
    "A1Cresult",
    *MEDICATIONS,
    "change",
    "diabetesMed",
    "readmitted",
)
RAW_TARGET = "readmitted"
TARGET = "readmitted_30d"

# Discharge dispositions meaning death or hospice: such patients cannot be readmitted.
EXCLUDED_DISCHARGES = (11, 13, 14, 19, 20, 21)

COUNT_FEATURES = (
    "time_in_hospital",
    "num_lab_procedures",
    "num_procedures",
    "num_medications",
    "number_outpatient",
    "number_emergency",
    "number_inpatient",
    "number_diagnoses",
)
NUMERIC_FEATURES = (*COUNT_FEATURES, "n_active_meds", "n_med_changes")
CATEGORICAL_FEATURES = (
    "race",
    "gender",
    "age_band",
    "admission_type",
    "discharge_group",
    "admission_source",
    "medical_specialty",
    "diag_1_group",
    "A1Cresult",
    "max_glu_serum",
    "insulin",
    "metformin",
    "change",
    "diabetesMed",
)
FEATURES = (*NUMERIC_FEATURES, *CATEGORICAL_FEATURES)

RACES = ("Caucasian", "AfricanAmerican", "Hispanic", "Asian", "Other")
GENDERS = ("Female", "Male")
AGE_BANDS = ("0-40", "40-50", "50-60", "60-70", "70-80", "80-90", "90-100")
_AGE_TO_BAND = {
    "[0-10)": "0-40",
    "[10-20)": "0-40",
    "[20-30)": "0-40",
    "[30-40)": "0-40",
    "[40-50)": "40-50",
    "[50-60)": "50-60",
    "[60-70)": "60-70",
    "[70-80)": "70-80",
    "[80-90)": "80-90",
    "[90-100)": "90-100",
}
ADMISSION_TYPES = ("emergency", "urgent", "elective", "other", "unknown")
_ADMISSION_TYPE = {1: "emergency", 2: "urgent", 3: "elective", 4: "other", 7: "other"}  # 5, 6, 8: unknown
DISCHARGE_GROUPS = ("home", "home_health", "snf", "other_facility", "left_ama", "unknown")
_DISCHARGE = {
    1: "home",
    6: "home_health",
    8: "home_health",
    3: "snf",
    2: "other_facility",
    4: "other_facility",
    5: "other_facility",
    9: "other_facility",
    10: "other_facility",
    12: "other_facility",
    15: "other_facility",
    16: "other_facility",
    17: "other_facility",
    22: "other_facility",
    23: "other_facility",
    24: "other_facility",
    27: "other_facility",
    28: "other_facility",
    29: "other_facility",
    30: "other_facility",
    7: "left_ama",
}  # 18, 25, 26 (NULL / not mapped / unknown) and unseen ids: unknown
ADMISSION_SOURCES = ("emergency_room", "referral", "transfer", "other", "unknown")
_ADMISSION_SOURCE = {
    7: "emergency_room",
    1: "referral",
    2: "referral",
    3: "referral",
    4: "transfer",
    5: "transfer",
    6: "transfer",
    10: "transfer",
    18: "transfer",
    22: "transfer",
    25: "transfer",
    26: "transfer",
    8: "other",
    11: "other",
    12: "other",
    13: "other",
    14: "other",
    23: "other",
    24: "other",
}  # 9, 15, 17, 20, 21 (not available / NULL / unknown) and unseen ids: unknown
DIAG_GROUPS = (
    "circulatory",
    "respiratory",
    "digestive",
    "diabetes",
    "injury",
    "musculoskeletal",
    "genitourinary",
    "neoplasms",
    "other",
)
LAB_RESULTS = ("not_measured", "Norm", ">7", ">8")
GLUCOSE_RESULTS = ("not_measured", "Norm", ">200", ">300")
MED_STATES = ("No", "Steady", "Up", "Down")
CHANGE_VALUES = ("No", "Ch")
YES_NO = ("No", "Yes")

# The most frequent specialties of the real file keep their name; the rest of its (long-tailed)
# vocabulary becomes "Other". A specialty the file never had is kept verbatim: the model ignores an
# unknown level (one-hot, handle_unknown="ignore"), and drift detection sees it as a new level.
TOP_SPECIALTIES = (
    "InternalMedicine",
    "Emergency/Trauma",
    "Family/GeneralPractice",
    "Cardiology",
    "Surgery-General",
    "Nephrology",
    "Orthopedics",
    "Orthopedics-Reconstructive",
    "Radiologist",
    "Pulmonology",
    "Psychiatry",
    "Urology",
    "ObstetricsandGynecology",
    "Surgery-Cardiovascular/Thoracic",
    "Gastroenterology",
)
TAIL_SPECIALTIES = (
    "Surgery-Vascular",
    "Surgery-Neuro",
    "PhysicalMedicineandRehabilitation",
    "Oncology",
    "Pediatrics",
    "Hematology/Oncology",
    "Neurology",
    "Pediatrics-Endocrinology",
    "Otolaryngology",
    "Endocrinology",
    "Surgery-Thoracic",
    "Psychology",
    "Podiatry",
    "Surgery-Cardiovascular",
    "Pediatrics-CriticalCare",
    "Hematology",
    "Gynecology",
    "Hospitalist",
    "Radiology",
    "Surgeon",
    "Osteopath",
    "InfectiousDiseases",
    "Surgery-Plastic",
    "Ophthalmology",
    "Pediatrics-Pulmonology",
    "Rheumatology",
    "Anesthesiology-Pediatric",
    "Obstetrics",
    "SurgicalSpecialty",
    "Surgery-Maxillofacial",
    "Pediatrics-Neurology",
    "Anesthesiology",
    "Surgery-Colon&Rectal",
    "Pathology",
    "Cardiology-Pediatric",
    "Endocrinology-Metabolism",
    "PhysicianNotFound",
    "Surgery-Pediatric",
    "Pediatrics-Hematology-Oncology",
    "Pediatrics-EmergencyMedicine",
    "AllergyandImmunology",
    "Psychiatry-Child/Adolescent",
    "Pediatrics-AllergyandImmunology",
    "Dentistry",
    "Surgery-PlasticwithinHeadandNeck",
    "Psychiatry-Addictive",
    "Proctology",
    "Dermatology",
    "SportsMedicine",
    "Speech",
    "Pediatrics-InfectiousDiseases",
    "OutreachServices",
    "Perinatology",
    "Neurophysiology",
    "Resident",
    "DCPTEAM",
    "Obsterics&Gynecology-GynecologicOnco",
)
_TAIL = frozenset(TAIL_SPECIALTIES)
# Specialties the drift knob introduces (absent from the real file).
DRIFT_SPECIALTIES = ("Telehealth", "VirtualWard")


# ---------------------------------------------------------------------------------------------------
# Cleaning and features


def _per_value(col: pd.Series, fn: Callable[[pd.Series], pd.Series]) -> np.ndarray:
    """``fn`` applied to the distinct values of ``col`` only, then spread back to every row.

    Raw columns hold few distinct values, so this keeps ``features`` at C speed on millions of rows.
    """
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    values = pd.Series(np.append(np.asarray(uniques, dtype=object), [np.nan]), dtype=object)
    return np.asarray(fn(values).to_numpy(dtype=object))[codes]  # code -1 (missing) → the last entry


def _missing(values: pd.Series) -> pd.Series:
    """True where the raw file has no value: ``?``, empty, NaN/None."""
    text = values.astype(str).str.strip()
    return values.isna() | text.isin(["?", "", "nan", "None", "<NA>"])


def _text(values: pd.Series, missing: str = "") -> pd.Series:
    return values.astype(str).str.strip().where(~_missing(values), missing)


def _ints(col: pd.Series) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(col.dtype):
        return col.to_numpy(dtype="float64")
    mapped = _per_value(col, lambda v: pd.to_numeric(v.where(~_missing(v)), errors="coerce"))
    return mapped.astype("float64")


def _diag_group(values: pd.Series) -> pd.Series:
    """ICD-9 code → the groups of Strack et al. (2014); missing → ""."""
    text = _text(values)
    code = pd.to_numeric(text, errors="coerce")  # V and E codes are NaN here → "other"
    group = np.select(
        [
            ((code >= 390) & (code < 460)) | (np.floor(code) == 785),
            ((code >= 460) & (code < 520)) | (np.floor(code) == 786),
            ((code >= 520) & (code < 580)) | (np.floor(code) == 787),
            np.floor(code) == 250,
            (code >= 800) & (code < 1000),
            (code >= 710) & (code < 740),
            ((code >= 580) & (code < 630)) | (np.floor(code) == 788),
            (code >= 140) & (code < 240),
        ],
        list(DIAG_GROUPS[:-1]),
        default="other",
    )
    return pd.Series(np.where(text == "", "", group), index=values.index, dtype=object)


def _lab(values: pd.Series) -> pd.Series:
    """Lab results: "None" in the file means "not measured", a level of its own."""
    return _text(values, missing="not_measured")


def _specialty(values: pd.Series) -> pd.Series:
    text = _text(values, missing="Unknown")
    return text.where(~text.isin(_TAIL), "Other")


def _race(values: pd.Series) -> pd.Series:
    text = _text(values)
    return text.where(text.isin(RACES) | (text == ""), "Other")


def _coded(col: pd.Series, mapping: dict[int, str], default: str) -> np.ndarray:
    ids = pd.Series(_ints(col))
    return np.asarray(ids.map(mapping).fillna(default).to_numpy(dtype=object))


def features(raw: pd.DataFrame) -> pd.DataFrame:
    """The model's features from rows in the raw file's format, one output row per input row.

    No row is dropped (scoring needs every input back); a frame that already holds the model's
    features is returned with just those columns, so scoring accepts either format. Raw cells may be
    text (as read from the CSV), numbers or pandas categoricals (as generated).
    """
    if "age" not in raw.columns and all(name in raw.columns for name in FEATURES):
        return raw[list(FEATURES)].copy()
    out: dict[str, np.ndarray] = {}
    for name in COUNT_FEATURES:
        out[name] = _ints(raw[name])
    active = np.zeros(len(raw), dtype="float64")
    changes = np.zeros(len(raw), dtype="float64")
    for med in MEDICATIONS:
        if med in raw.columns:
            state = _per_value(raw[med], lambda v: _text(v))
            active += (state != "No") & (state != "")
            changes += (state == "Up") | (state == "Down")
    out["n_active_meds"] = active
    out["n_med_changes"] = changes
    out["race"] = _per_value(raw["race"], _race)
    # "Unknown/Invalid" (a handful of rows) is a missing value for scoring; training drops those rows.
    out["gender"] = _per_value(raw["gender"], lambda v: _text(v).where(_text(v).isin(GENDERS), ""))
    out["age_band"] = _per_value(raw["age"], lambda v: _text(v).map(_AGE_TO_BAND).fillna(""))
    out["admission_type"] = _coded(raw["admission_type_id"], _ADMISSION_TYPE, "unknown")
    out["discharge_group"] = _coded(raw["discharge_disposition_id"], _DISCHARGE, "unknown")
    out["admission_source"] = _coded(raw["admission_source_id"], _ADMISSION_SOURCE, "unknown")
    out["medical_specialty"] = _per_value(raw["medical_specialty"], _specialty)
    out["diag_1_group"] = _per_value(raw["diag_1"], _diag_group)
    out["A1Cresult"] = _per_value(raw["A1Cresult"], _lab)
    out["max_glu_serum"] = _per_value(raw["max_glu_serum"], _lab)
    for name in ("insulin", "metformin", "change", "diabetesMed"):
        out[name] = _per_value(raw[name], _text)
    return pd.DataFrame(out, index=raw.index, columns=list(FEATURES))


def target(raw: pd.DataFrame) -> pd.Series:
    """1 when the patient was readmitted within 30 days (``<30``), else 0 (``>30`` or ``NO``)."""
    early = _per_value(raw[RAW_TARGET], lambda v: _text(v) == "<30").astype(bool)
    return pd.Series(early.astype("int64"), index=raw.index, name=TARGET)


def clean(raw: pd.DataFrame) -> pd.DataFrame:
    """The documented cleaning of the raw file, then its features and the binary target.

    Drops encounters ending in death or hospice, the ``Unknown/Invalid`` gender, and every encounter
    of a patient but the first (lowest ``encounter_id``); ``weight``, ``payer_code`` and the IDs are
    not features. Row order is kept.
    """
    keep = ~np.isin(_ints(raw["discharge_disposition_id"]), EXCLUDED_DISCHARGES)
    keep &= np.isin(_per_value(raw["gender"], _text), GENDERS)
    rows = raw.loc[keep]
    if "encounter_id" in rows.columns and "patient_nbr" in rows.columns:
        order = np.argsort(_ints(rows["encounter_id"]), kind="stable")
        patients = pd.Series(_ints(rows["patient_nbr"])[order])
        first = np.zeros(len(rows), dtype=bool)
        first[order[~patients.duplicated(keep="first").to_numpy()]] = True
        rows = rows.loc[first]
    out = features(rows)
    out[TARGET] = target(rows)
    return out.reset_index(drop=True)


def read_raw(path: str | Path) -> pd.DataFrame:
    """The raw file as written (CSV or Parquet); CSV cells are read as text, ``?`` kept as is."""
    path = Path(path)
    if path.suffix.lower() in {".parquet", ".pq"}:
        return pd.read_parquet(path)
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def load_diabetic_csv(path: str | Path) -> pd.DataFrame:
    """Read ``diabetic_data.csv`` (or the same columns as Parquet) and clean it."""
    return clean(read_raw(path))


# ---------------------------------------------------------------------------------------------------
# Generator

# Marginals of the real file (rounded), used by the generator.
_RACE_P = {
    "Caucasian": 0.748,
    "AfricanAmerican": 0.189,
    "?": 0.022,
    "Hispanic": 0.020,
    "Other": 0.015,
    "Asian": 0.006,
}
_GENDER_P = {"Female": 0.5375, "Male": 0.4625}
_AGE_P = {
    "[0-10)": 0.002,
    "[10-20)": 0.007,
    "[20-30)": 0.016,
    "[30-40)": 0.037,
    "[40-50)": 0.095,
    "[50-60)": 0.170,
    "[60-70)": 0.221,
    "[70-80)": 0.256,
    "[80-90)": 0.169,
    "[90-100)": 0.027,
}
_AGE_DRIFT_P = {
    "[0-10)": 0.001,
    "[10-20)": 0.003,
    "[20-30)": 0.008,
    "[30-40)": 0.02,
    "[40-50)": 0.05,
    "[50-60)": 0.10,
    "[60-70)": 0.17,
    "[70-80)": 0.28,
    "[80-90)": 0.27,
    "[90-100)": 0.098,
}
_WEIGHT_P = {
    "?": 0.969,
    "[75-100)": 0.013,
    "[50-75)": 0.009,
    "[100-125)": 0.006,
    "[125-150)": 0.0015,
    "[25-50)": 0.001,
    "[0-25)": 0.0005,
}
_ADM_TYPE_P = {1: 0.531, 3: 0.185, 2: 0.182, 6: 0.052, 5: 0.047, 8: 0.003}
_DISCHARGE_P = {
    1: 0.592,
    3: 0.137,
    6: 0.127,
    18: 0.036,
    2: 0.021,
    22: 0.020,
    11: 0.016,
    5: 0.012,
    25: 0.010,
    4: 0.008,
    7: 0.006,
    23: 0.004,
    13: 0.004,
    14: 0.004,
    28: 0.0014,
    8: 0.0011,
    15: 0.0006,
    24: 0.0005,
    9: 0.0002,
    17: 0.0001,
    19: 0.0001,
}
_ADM_SOURCE_P = {
    7: 0.565,
    1: 0.290,
    17: 0.067,
    4: 0.031,
    6: 0.022,
    2: 0.011,
    5: 0.008,
    3: 0.002,
    20: 0.002,
    9: 0.0012,
}
_ADM_SOURCE_DRIFT_P = {
    7: 0.40,
    1: 0.25,
    17: 0.06,
    4: 0.12,
    6: 0.10,
    2: 0.03,
    5: 0.03,
    3: 0.005,
    20: 0.003,
    9: 0.002,
}
_PAYER_P = {
    "?": 0.396,
    "MC": 0.320,
    "HM": 0.062,
    "SP": 0.049,
    "BC": 0.046,
    "MD": 0.035,
    "CP": 0.025,
    "UN": 0.024,
    "CM": 0.019,
    "OG": 0.010,
    "PO": 0.006,
    "DM": 0.005,
    "CH": 0.0015,
    "WC": 0.0013,
    "OT": 0.001,
    "MP": 0.0008,
    "SI": 0.0005,
}
_SPECIALTY_P = {
    "?": 0.491,
    "InternalMedicine": 0.144,
    "Emergency/Trauma": 0.074,
    "Family/GeneralPractice": 0.073,
    "Cardiology": 0.053,
    "Surgery-General": 0.030,
    "Nephrology": 0.016,
    "Orthopedics": 0.014,
    "Orthopedics-Reconstructive": 0.012,
    "Radiologist": 0.011,
    "Pulmonology": 0.009,
    "Psychiatry": 0.008,
    "Urology": 0.007,
    "ObstetricsandGynecology": 0.007,
    "Surgery-Cardiovascular/Thoracic": 0.006,
    "Gastroenterology": 0.006,
    "Surgery-Vascular": 0.005,
    "Surgery-Neuro": 0.005,
    "PhysicalMedicineandRehabilitation": 0.004,
    "Oncology": 0.003,
    "Pediatrics": 0.002,
    "Hematology/Oncology": 0.002,
    "Neurology": 0.002,
    "Endocrinology": 0.001,
    "Otolaryngology": 0.001,
    "Hospitalist": 0.0006,
    "Podiatry": 0.001,
}
_SPECIALTY_RISK = {
    "Nephrology": 0.35,
    "Hematology/Oncology": 0.3,
    "Oncology": 0.3,
    "Psychiatry": 0.2,
    "Surgery-General": -0.15,
    "Orthopedics": -0.3,
    "Orthopedics-Reconstructive": -0.35,
    "ObstetricsandGynecology": -0.4,
    "Cardiology": -0.1,
    "Emergency/Trauma": 0.05,
}
# ICD-9 codes by group, with the group shares of diag_1 in the real file.
_DIAG_CODES = {
    "circulatory": ("428", "414", "410", "427", "434", "435", "440", "402", "403", "424", "415"),
    "respiratory": ("486", "491", "493", "518", "496", "482", "786"),
    "digestive": ("577", "574", "562", "578", "560", "558", "787"),
    "diabetes": ("250.8", "250.6", "250.13", "250.02", "250.11", "250.82", "250.7", "250.4"),
    "injury": ("996", "998", "820", "997", "821", "824", "965"),
    "musculoskeletal": ("715", "722", "730", "724", "733", "721"),
    "genitourinary": ("599", "584", "590", "592", "585", "788"),
    "neoplasms": ("174", "162", "153", "157", "188", "197", "202"),
    "other": ("780", "276", "38", "682", "789", "V57", "V58", "E888", "293", "295", "296", "331", "282"),
}
_DIAG_P = {
    "circulatory": 0.30,
    "other": 0.175,
    "respiratory": 0.14,
    "digestive": 0.093,
    "diabetes": 0.086,
    "injury": 0.068,
    "genitourinary": 0.05,
    "musculoskeletal": 0.049,
    "neoplasms": 0.039,
}
_DIAG_RISK = {
    "circulatory": 0.05,
    "respiratory": -0.05,
    "digestive": 0.0,
    "diabetes": -0.05,
    "injury": 0.1,
    "musculoskeletal": -0.25,
    "genitourinary": 0.05,
    "neoplasms": 0.3,
    "other": 0.0,
}
_TIH_P = (0.140, 0.170, 0.175, 0.137, 0.098, 0.074, 0.058, 0.043, 0.030, 0.023, 0.018, 0.014, 0.012, 0.010)
_NPROC_P = (0.46, 0.20, 0.125, 0.093, 0.041, 0.030, 0.051)
_NDIAG_P = {
    1: 0.002,
    2: 0.010,
    3: 0.028,
    4: 0.054,
    5: 0.111,
    6: 0.100,
    7: 0.101,
    8: 0.104,
    9: 0.486,
    10: 0.001,
    11: 0.001,
    12: 0.001,
    13: 0.001,
}
_GLU_P = {"None": 0.947, "Norm": 0.026, ">200": 0.015, ">300": 0.012}
_A1C_P = {"None": 0.833, ">8": 0.081, "Norm": 0.049, ">7": 0.037}
_A1C_DRIFT_P = {"None": 0.60, ">8": 0.20, "Norm": 0.10, ">7": 0.10}
# P(No, Steady, Up, Down) per medication; unlisted ones are "No" except for a rare "Steady".
_MED_P = {
    "metformin": (0.804, 0.180, 0.010, 0.006),
    "repaglinide": (0.985, 0.0136, 0.0011, 0.0003),
    "nateglinide": (0.993, 0.0066, 0.0002, 0.0002),
    "chlorpropamide": (0.9992, 0.0008, 0.0, 0.0),
    "glimepiride": (0.949, 0.046, 0.0032, 0.0018),
    "glipizide": (0.875, 0.112, 0.0076, 0.0054),
    "glyburide": (0.895, 0.091, 0.0080, 0.0055),
    "tolbutamide": (0.9998, 0.0002, 0.0, 0.0),
    "pioglitazone": (0.928, 0.069, 0.0023, 0.0012),
    "rosiglitazone": (0.937, 0.060, 0.0017, 0.0009),
    "acarbose": (0.997, 0.0030, 0.0001, 0.0),
    "miglitol": (0.9996, 0.0004, 0.0, 0.0),
    "tolazamide": (0.9996, 0.0004, 0.0, 0.0),
    "insulin": (0.466, 0.303, 0.111, 0.120),
    "glyburide-metformin": (0.993, 0.0068, 0.0001, 0.0001),
}


def _codes(rng: np.random.Generator, weights: Sequence[float], n: int) -> np.ndarray:
    """``n`` draws of an index into ``weights`` (normalised), as small integers."""
    w = np.asarray(weights, dtype=float)
    cdf = np.cumsum(w / w.sum())
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(w) - 1).astype(np.int16)


def _ids(rng: np.random.Generator, table: dict[int, float], n: int) -> np.ndarray:
    """``n`` draws of the integer keys of ``table`` weighted by its values."""
    keys = np.asarray(list(table), dtype=np.int64)
    return np.asarray(keys[_codes(rng, list(table.values()), n)])


def _cat(codes: np.ndarray, categories: Sequence[str]) -> pd.Series:
    return pd.Series(pd.Categorical.from_codes(codes, categories=pd.Index(list(categories))), copy=False)


def _counts(rng: np.random.Generator, mean: float, dispersion: float, frailty: np.ndarray) -> np.ndarray:
    """Over-dispersed counts (gamma-Poisson) sharing a patient frailty."""
    lam = mean * frailty * rng.gamma(dispersion, 1.0 / dispersion, len(frailty))
    return np.asarray(rng.poisson(lam))


_DIAG_GROUP_NAMES = tuple(_DIAG_P)
_DIAG_VOCAB = ("?", *dict.fromkeys(code for codes in _DIAG_CODES.values() for code in codes))
# For each group (in _DIAG_GROUP_NAMES order): the vocabulary indices of its codes.
_DIAG_POOLS = [np.asarray([_DIAG_VOCAB.index(c) for c in _DIAG_CODES[g]]) for g in _DIAG_GROUP_NAMES]


def _diag(rng: np.random.Generator, n: int, missing_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Group indices and ICD-9 codes (as vocabulary indices, 0 = "?") of ``n`` diagnoses."""
    groups = _codes(rng, list(_DIAG_P.values()), n)
    pick = rng.random(n)
    codes = np.zeros(n, dtype=np.int16)
    for g, pool in enumerate(_DIAG_POOLS):
        mask = groups == g
        codes[mask] = pool[(pick[mask] * len(pool)).astype(np.int64)]
    codes[rng.random(n) < missing_rate] = 0
    return groups, codes


def _keys(table: dict[str, float]) -> list[str]:
    return list(table)


# Intercept of the 30-day risk; calibrated so that about 11 % of generated rows are "<30".
_INTERCEPT = -3.15


def generate(rows: int, seed: int = 0, drift: bool = False, *, start: int = 0) -> pd.DataFrame:
    """``rows`` synthetic encounters with the raw schema of ``diabetic_data.csv`` (``RAW_COLUMNS``).

    Deterministic for a given (rows, seed, drift, start); vectorised (1 million rows in about a
    second). Text columns are pandas categoricals (cheap to build and to write; ``clean`` and
    ``features`` treat them like the text read from the CSV). ``start`` offsets the encounter ids and
    the random stream, so that ``write`` can produce large files chunk by chunk.

    The 30-day risk rises with prior inpatient and emergency visits, length of stay, number of
    diagnoses, age, discharge to a facility or home health, insulin changes, and some specialties and
    diagnoses; demographics other than age carry no risk of their own.

    ``drift=True`` shifts the population: older patients, longer stays, more lab procedures and
    medications, more prior inpatient and emergency visits, more transfers, more HbA1c tests, and a
    quarter of encounters from specialties the real file never had (``DRIFT_SPECIALTIES``).
    """
    if rows < 0:
        raise ValueError("rows must be >= 0")
    rng = np.random.default_rng([seed, start, int(drift)])
    n = rows

    frailty = rng.gamma(2.0, 0.5, n)  # mean 1: sicker patients use more care of every kind
    age_idx = _codes(rng, list((_AGE_DRIFT_P if drift else _AGE_P).values()), n)  # 0..9, in age order
    tih = _codes(rng, _TIH_P, n).astype(np.int64) + 1
    if drift:
        tih = np.minimum(tih + rng.poisson(1.5, n), 14)
    adm_type = _ids(rng, _ADM_TYPE_P, n)
    discharge = _ids(rng, _DISCHARGE_P, n)
    # Longer stays and older patients leave more often to a facility or home health.
    to_facility = rng.random(n) < 0.02 * (tih - 1) + 0.02 * np.maximum(age_idx - 5, 0)
    discharge = np.where(to_facility & (discharge == 1), np.where(rng.random(n) < 0.5, 3, 6), discharge)
    adm_source = _ids(rng, _ADM_SOURCE_DRIFT_P if drift else _ADM_SOURCE_P, n)

    lab_mean = 35.0 + 2.0 * tih + (12.0 if drift else 0.0)
    n_lab = np.clip(np.rint(rng.normal(lab_mean, 18.0)), 1, 132).astype(np.int64)
    n_proc = _codes(rng, _NPROC_P, n).astype(np.int64)
    med_mean = (7.0 + 2.0 * tih + 1.5 * n_proc) * (1.25 if drift else 1.0)
    n_meds = np.clip(np.rint(rng.gamma(4.0, med_mean / 4.0)), 1, 81).astype(np.int64)
    scale = 1.8 if drift else 1.0
    outpatient = np.minimum(_counts(rng, 0.37, 0.15, frailty), 42)
    emergency = np.minimum(_counts(rng, 0.20 * scale, 0.10, frailty), 76)
    inpatient = np.minimum(_counts(rng, 0.64 * scale, 0.45, frailty), 21)
    n_diag = np.asarray(list(_NDIAG_P), dtype=np.int64)[_codes(rng, list(_NDIAG_P.values()), n)]
    n_diag = np.minimum(n_diag + (age_idx >= 7) * (rng.random(n) < 0.3), 16)

    # Medications: state codes 0 No, 1 Steady, 2 Up, 3 Down.
    meds: dict[str, np.ndarray] = {}
    changed = np.zeros(n, dtype=bool)
    active = np.zeros(n, dtype=bool)
    for name in MEDICATIONS:
        codes = _codes(rng, _MED_P.get(name, (0.9999, 0.0001, 0.0, 0.0)), n)
        meds[name] = codes
        changed |= codes >= 2
        active |= codes > 0
    ch = changed | (active & (rng.random(n) < 0.4))

    a1c_keys = _keys(_A1C_P)
    a1c = _codes(rng, [(_A1C_DRIFT_P if drift else _A1C_P)[k] for k in a1c_keys], n)
    glu_keys = _keys(_GLU_P)
    glu = _codes(rng, list(_GLU_P.values()), n)
    spec_keys = _keys(_SPECIALTY_P) + (list(DRIFT_SPECIALTIES) if drift else [])
    specialty = _codes(rng, list(_SPECIALTY_P.values()), n)
    if drift:
        new = rng.random(n) < 0.25
        specialty[new] = len(_SPECIALTY_P) + rng.integers(0, len(DRIFT_SPECIALTIES), int(new.sum()))
    diag_group, diag_1 = _diag(rng, n, 0.0002)
    _, diag_2 = _diag(rng, n, 0.0035)
    _, diag_3 = _diag(rng, n, 0.014)
    race = _codes(rng, list(_RACE_P.values()), n)
    gender_keys = [*_GENDER_P, "Unknown/Invalid"]
    gender = _codes(rng, list(_GENDER_P.values()), n)
    gender[rng.random(n) < 0.00003] = 2

    # The 30-day readmission risk (log-odds).
    insulin = meds["insulin"]
    specialty_risk = np.asarray([_SPECIALTY_RISK.get(k, 0.0) for k in spec_keys])
    diag_risk = np.asarray([_DIAG_RISK[g] for g in _DIAG_GROUP_NAMES])
    logit = (
        _INTERCEPT
        + 0.42 * np.minimum(inpatient, 8)
        + 0.20 * np.minimum(emergency, 5)
        + 0.06 * np.minimum(outpatient, 5)
        + 0.07 * (tih - 4)
        + 0.10 * (np.minimum(n_diag, 9) - 7)
        + 0.08 * (age_idx - 6)
        + 0.01 * (n_meds - 16)
        + np.select(
            [
                np.isin(discharge, (6, 8)),
                discharge == 3,
                np.isin(discharge, (2, 4, 5, 22, 23, 28)),
                discharge == 7,
            ],
            [0.40, 0.60, 0.45, 0.70],
            0.0,
        )
        + 0.10 * np.isin(adm_source, (4, 5, 6))
        + np.where(insulin >= 2, 0.30, np.where(insulin == 1, 0.05, 0.0))
        + 0.08 * ch
        + 0.12 * active
        - 0.10 * (a1c != a1c_keys.index("None"))
        + 0.15 * (glu == glu_keys.index(">300"))
        + specialty_risk[specialty]
        + diag_risk[diag_group]
    )
    p30 = 1.0 / (1.0 + np.exp(-logit))
    # Patients who died or went to hospice are rarely readmitted; ">30" shares part of the risk.
    p30 = np.where(np.isin(discharge, EXCLUDED_DISCHARGES), 0.02, p30)
    p_later = np.clip(0.40 + 0.6 * (p30 - 0.11), 0.05, 0.9)
    u = rng.random(n)
    readmitted = np.where(u < p30, 0, np.where(u < p30 + (1 - p30) * p_later, 1, 2))

    encounter_id = 12522 + 2 * (start + np.arange(n, dtype=np.int64))
    # About 30 % of encounters belong to a patient seen before (the real file: 71,518 of 101,766).
    patient_space = max(int((start + n) * 0.75), 1)
    repeat = rng.random(n) >= 0.7
    patient = 135 + 9 * np.where(repeat, rng.integers(0, patient_space, n), start + np.arange(n))
    columns: dict[str, object] = {
        "encounter_id": encounter_id,
        "patient_nbr": patient.astype(np.int64),
        "race": _cat(race, _keys(_RACE_P)),
        "gender": _cat(gender, gender_keys),
        "age": _cat(age_idx, _keys(_AGE_P)),
        "weight": _cat(_codes(rng, list(_WEIGHT_P.values()), n), _keys(_WEIGHT_P)),
        "admission_type_id": adm_type,
        "discharge_disposition_id": discharge.astype(np.int64),
        "admission_source_id": adm_source,
        "time_in_hospital": tih.astype(np.int64),
        "payer_code": _cat(_codes(rng, list(_PAYER_P.values()), n), _keys(_PAYER_P)),
        "medical_specialty": _cat(specialty, spec_keys),
        "num_lab_procedures": n_lab,
        "num_procedures": n_proc,
        "num_medications": n_meds,
        "number_outpatient": outpatient.astype(np.int64),
        "number_emergency": emergency.astype(np.int64),
        "number_inpatient": inpatient.astype(np.int64),
        "diag_1": _cat(diag_1, _DIAG_VOCAB),
        "diag_2": _cat(diag_2, _DIAG_VOCAB),
        "diag_3": _cat(diag_3, _DIAG_VOCAB),
        "number_diagnoses": n_diag.astype(np.int64),
        "max_glu_serum": _cat(glu, glu_keys),
        "A1Cresult": _cat(a1c, a1c_keys),
        **{name: _cat(codes, MED_STATES) for name, codes in meds.items()},
        "change": _cat(ch.astype(np.int8), ("No", "Ch")),
        "diabetesMed": _cat(active.astype(np.int8), ("No", "Yes")),
        "readmitted": _cat(readmitted, ("<30", ">30", "NO")),
    }
    return pd.DataFrame(columns, columns=list(RAW_COLUMNS))


def write(
    path: str | Path, rows: int, seed: int = 0, drift: bool = False, chunk_rows: int = 1_000_000
) -> Path:
    """Write ``rows`` generated raw rows to CSV or Parquet (by suffix), ``chunk_rows`` at a time.

    Memory stays bounded by one chunk, so 10 million rows never sit in memory at once.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    parquet = path.suffix.lower() in {".parquet", ".pq"}
    writer = None
    try:
        if rows == 0:
            empty = generate(0, seed, drift)
            if parquet:
                empty.to_parquet(path, index=False)
            else:
                empty.to_csv(path, index=False)
            return path
        for start in range(0, rows, chunk_rows):
            chunk = generate(min(chunk_rows, rows - start), seed, drift, start=start)
            if parquet:
                import pyarrow as pa
                import pyarrow.parquet as pq

                table = pa.Table.from_pandas(chunk, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(path, table.schema)
                writer.write_table(table)
            else:
                chunk.to_csv(path, index=False, mode="w" if start == 0 else "a", header=start == 0)
    finally:
        if writer is not None:
            writer.close()
    return path
