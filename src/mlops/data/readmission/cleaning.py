"""Cleaning of ``diabetic_data.csv`` (Diabetes 130-US hospitals 1999-2008): raw columns -> features.

The public file has 50 columns (``vocabulary.RAW_COLUMNS``), one row per inpatient encounter of a
diabetic patient, ``?`` as its missing marker and the target ``readmitted`` in {``<30``, ``>30``,
``NO``}. This module

- cleans the real file the documented way (Strack et al., 2014): ``?`` is missing; the ID columns
  and the mostly empty ``weight`` and ``payer_code`` are dropped; encounters that ended in death or
  hospice (discharge dispositions 11, 13, 14, 19, 20, 21) are dropped, since those patients cannot
  be readmitted; the 3 rows with gender ``Unknown/Invalid`` are dropped; only the first encounter of
  each patient is kept, so the rows are independent;
- maps the raw columns to the model's features (``features``, also the ``prepare`` of the use case,
  so batch inputs in the raw format score directly) and the binary target (1 = ``<30``).

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

from mlops.data.readmission.vocabulary import (
    COUNT_FEATURES,
    DIAG_GROUPS,
    EXCLUDED_DISCHARGES,
    FEATURE_NAMES,
    GENDERS,
    MEDICATIONS,
    RACES,
    RAW_TARGET,
    TAIL_SPECIALTIES,
    TARGET,
)

if TYPE_CHECKING:
    from collections.abc import Callable

# Raw codes -> feature levels (``vocabulary``'s categories).
AGE_TO_BAND = {
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
_ADMISSION_TYPE = {1: "emergency", 2: "urgent", 3: "elective", 4: "other", 7: "other"}  # 5, 6, 8: unknown
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
_TAIL = frozenset(TAIL_SPECIALTIES)


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
    if "age" not in raw.columns and all(name in raw.columns for name in FEATURE_NAMES):
        return raw[list(FEATURE_NAMES)].copy()
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
    out["age_band"] = _per_value(raw["age"], lambda v: _text(v).map(AGE_TO_BAND).fillna(""))
    out["admission_type"] = _coded(raw["admission_type_id"], _ADMISSION_TYPE, "unknown")
    out["discharge_group"] = _coded(raw["discharge_disposition_id"], _DISCHARGE, "unknown")
    out["admission_source"] = _coded(raw["admission_source_id"], _ADMISSION_SOURCE, "unknown")
    out["medical_specialty"] = _per_value(raw["medical_specialty"], _specialty)
    out["diag_1_group"] = _per_value(raw["diag_1"], _diag_group)
    out["A1Cresult"] = _per_value(raw["A1Cresult"], _lab)
    out["max_glu_serum"] = _per_value(raw["max_glu_serum"], _lab)
    for name in ("insulin", "metformin", "change", "diabetesMed"):
        out[name] = _per_value(raw[name], _text)
    return pd.DataFrame(out, index=raw.index, columns=list(FEATURE_NAMES))


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
