"""A deterministic generator of rows with the raw schema of ``diabetic_data.csv``, and its drift knob.

The machines that run the demo and the tests cannot download the real file, so ``generate`` (and
``write``, for files of any size) makes encounters with realistic marginals, real signal and a
drift knob; ``cleaning`` treats them exactly like the real file. Vectorised: 1 million rows in
about a second.

The marginals (the real file's, rounded) and the per-level log-odds of the risk are data, kept in
``tables.json`` beside this module and read once; the risk's structure (which columns raise it, by
how much per unit) is code, in ``generate``.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mlops.data.readmission.vocabulary import (
    DRIFT_SPECIALTIES,
    EXCLUDED_DISCHARGES,
    MED_STATES,
    MEDICATIONS,
    RAW_COLUMNS,
)

if TYPE_CHECKING:
    from collections.abc import Sequence


@dataclass(frozen=True)
class Tables:
    """The generator's probability tables (``tables.json``), with dict order as in the file."""

    race: dict[str, float]
    gender: dict[str, float]
    age: dict[str, float]
    age_drift: dict[str, float]
    weight: dict[str, float]
    admission_type_id: dict[int, float]
    discharge_disposition_id: dict[int, float]
    admission_source_id: dict[int, float]
    admission_source_id_drift: dict[int, float]
    payer_code: dict[str, float]
    medical_specialty: dict[str, float]
    medical_specialty_risk: dict[str, float]
    diag_codes: dict[str, tuple[str, ...]]
    diag_group: dict[str, float]
    diag_group_risk: dict[str, float]
    time_in_hospital: tuple[float, ...]
    num_procedures: tuple[float, ...]
    number_diagnoses: dict[int, float]
    max_glu_serum: dict[str, float]
    A1Cresult: dict[str, float]  # the raw column names
    A1Cresult_drift: dict[str, float]
    medication_states: dict[str, tuple[float, ...]]  # P(No, Steady, Up, Down) per medication
    medication_states_default: tuple[float, ...]  # medications without a row of their own

    @property
    def diag_group_names(self) -> tuple[str, ...]:
        return tuple(self.diag_group)


# JSON has string keys and lists: these tables get their integer ids and tuples back.
_INT_KEYED = {
    "admission_type_id",
    "discharge_disposition_id",
    "admission_source_id",
    "admission_source_id_drift",
    "number_diagnoses",
}
_TUPLE_VALUED = {"diag_codes", "medication_states"}


@functools.cache
def tables() -> Tables:
    """``tables.json``, read once (a file of the package: wheels include it)."""
    raw: dict[str, Any] = json.loads(
        resources.files("mlops.data.readmission").joinpath("tables.json").read_text(encoding="utf-8")
    )
    raw.pop("about")
    values: dict[str, Any] = {}
    for name, value in raw.items():
        if name in _INT_KEYED:
            values[name] = {int(k): float(v) for k, v in value.items()}
        elif name in _TUPLE_VALUED:
            values[name] = {k: tuple(v) for k, v in value.items()}
        elif isinstance(value, list):
            values[name] = tuple(value)
        else:
            values[name] = dict(value)
    return Tables(**values)


@functools.cache
def _diag_vocabulary() -> tuple[tuple[str, ...], list[np.ndarray]]:
    """The ICD-9 codes the generator writes ("?" first), and per diagnosis group (in
    ``Tables.diag_group`` order) the vocabulary indices of its codes."""
    t = tables()
    vocab = ("?", *dict.fromkeys(code for codes in t.diag_codes.values() for code in codes))
    pools = [np.asarray([vocab.index(c) for c in t.diag_codes[g]]) for g in t.diag_group_names]
    return vocab, pools


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


def _diag(rng: np.random.Generator, n: int, missing_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Group indices and ICD-9 codes (as vocabulary indices, 0 = "?") of ``n`` diagnoses."""
    _, pools = _diag_vocabulary()
    groups = _codes(rng, list(tables().diag_group.values()), n)
    pick = rng.random(n)
    codes = np.zeros(n, dtype=np.int16)
    for g, pool in enumerate(pools):
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
    t = tables()
    diag_vocab, _ = _diag_vocabulary()

    frailty = rng.gamma(2.0, 0.5, n)  # mean 1: sicker patients use more care of every kind
    age_idx = _codes(rng, list((t.age_drift if drift else t.age).values()), n)  # 0..9, in age order
    tih = _codes(rng, t.time_in_hospital, n).astype(np.int64) + 1
    if drift:
        tih = np.minimum(tih + rng.poisson(1.5, n), 14)
    adm_type = _ids(rng, t.admission_type_id, n)
    discharge = _ids(rng, t.discharge_disposition_id, n)
    # Longer stays and older patients leave more often to a facility or home health.
    to_facility = rng.random(n) < 0.02 * (tih - 1) + 0.02 * np.maximum(age_idx - 5, 0)
    discharge = np.where(to_facility & (discharge == 1), np.where(rng.random(n) < 0.5, 3, 6), discharge)
    adm_source = _ids(rng, t.admission_source_id_drift if drift else t.admission_source_id, n)

    lab_mean = 35.0 + 2.0 * tih + (12.0 if drift else 0.0)
    n_lab = np.clip(np.rint(rng.normal(lab_mean, 18.0)), 1, 132).astype(np.int64)
    n_proc = _codes(rng, t.num_procedures, n).astype(np.int64)
    med_mean = (7.0 + 2.0 * tih + 1.5 * n_proc) * (1.25 if drift else 1.0)
    n_meds = np.clip(np.rint(rng.gamma(4.0, med_mean / 4.0)), 1, 81).astype(np.int64)
    scale = 1.8 if drift else 1.0
    outpatient = np.minimum(_counts(rng, 0.37, 0.15, frailty), 42)
    emergency = np.minimum(_counts(rng, 0.20 * scale, 0.10, frailty), 76)
    inpatient = np.minimum(_counts(rng, 0.64 * scale, 0.45, frailty), 21)
    n_diag = np.asarray(list(t.number_diagnoses), dtype=np.int64)[
        _codes(rng, list(t.number_diagnoses.values()), n)
    ]
    n_diag = np.minimum(n_diag + (age_idx >= 7) * (rng.random(n) < 0.3), 16)

    # Medications: state codes 0 No, 1 Steady, 2 Up, 3 Down.
    meds: dict[str, np.ndarray] = {}
    changed = np.zeros(n, dtype=bool)
    active = np.zeros(n, dtype=bool)
    for name in MEDICATIONS:
        codes = _codes(rng, t.medication_states.get(name, t.medication_states_default), n)
        meds[name] = codes
        changed |= codes >= 2
        active |= codes > 0
    ch = changed | (active & (rng.random(n) < 0.4))

    a1c_keys = _keys(t.A1Cresult)
    a1c = _codes(rng, [(t.A1Cresult_drift if drift else t.A1Cresult)[k] for k in a1c_keys], n)
    glu_keys = _keys(t.max_glu_serum)
    glu = _codes(rng, list(t.max_glu_serum.values()), n)
    spec_keys = _keys(t.medical_specialty) + (list(DRIFT_SPECIALTIES) if drift else [])
    specialty = _codes(rng, list(t.medical_specialty.values()), n)
    if drift:
        new = rng.random(n) < 0.25
        specialty[new] = len(t.medical_specialty) + rng.integers(0, len(DRIFT_SPECIALTIES), int(new.sum()))
    diag_group, diag_1 = _diag(rng, n, 0.0002)
    _, diag_2 = _diag(rng, n, 0.0035)
    _, diag_3 = _diag(rng, n, 0.014)
    race = _codes(rng, list(t.race.values()), n)
    gender_keys = [*t.gender, "Unknown/Invalid"]
    gender = _codes(rng, list(t.gender.values()), n)
    gender[rng.random(n) < 0.00003] = 2

    # The 30-day readmission risk (log-odds).
    insulin = meds["insulin"]
    specialty_risk = np.asarray([t.medical_specialty_risk.get(k, 0.0) for k in spec_keys])
    diag_risk = np.asarray([t.diag_group_risk[g] for g in t.diag_group_names])
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
        "race": _cat(race, _keys(t.race)),
        "gender": _cat(gender, gender_keys),
        "age": _cat(age_idx, _keys(t.age)),
        "weight": _cat(_codes(rng, list(t.weight.values()), n), _keys(t.weight)),
        "admission_type_id": adm_type,
        "discharge_disposition_id": discharge.astype(np.int64),
        "admission_source_id": adm_source,
        "time_in_hospital": tih.astype(np.int64),
        "payer_code": _cat(_codes(rng, list(t.payer_code.values()), n), _keys(t.payer_code)),
        "medical_specialty": _cat(specialty, spec_keys),
        "num_lab_procedures": n_lab,
        "num_procedures": n_proc,
        "num_medications": n_meds,
        "number_outpatient": outpatient.astype(np.int64),
        "number_emergency": emergency.astype(np.int64),
        "number_inpatient": inpatient.astype(np.int64),
        "diag_1": _cat(diag_1, diag_vocab),
        "diag_2": _cat(diag_2, diag_vocab),
        "diag_3": _cat(diag_3, diag_vocab),
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
