"""The enterprise example: 30-day readmission risk of diabetic inpatients.

Data: the schema of the public "Diabetes 130-US hospitals 1999-2008" file (``diabetic_data.csv``),
read and cleaned from ``MLOPS_DATA_PATH`` (CSV or Parquet) when set, otherwise 20,000 generated rows
(``mlops.data.readmission.generator.generate``, seeded with ``settings.seed``). Scoring inputs may be rows of
the raw file: ``prepare`` maps them to the features.

Model: HistGradientBoosting with balanced class weights behind the shared mixed-type preprocessing
(median imputation; most-frequent imputation of ``""`` + one-hot for categoricals), which converts
to ONNX with exact parity. Primary metric ROC AUC (the positive class is ~11 % of rows); the decision
threshold is tuned on a validation split (``mlops.ml.threshold``) and stored with the model.

Features, categories and the data gate: the features are ``mlops.data.readmission.vocabulary.FEATURES``
(defined once, with their closed categories and ranges; see there). ``medical_specialty`` stays
open: an unseen specialty scores (the encoder ignores it) and is flagged by drift detection, not by
the gate: the generator's drift knob relies on this.

Behaviour (checked by the model gate, ``mlops.ml.behaviour``): a lab count off by one or two changes
the predicted class of at most 5 % of holdout rows (the tree splits on a count the risk does not
depend on: ~1-2 % of rows flip today); giving every raw row another encounter's ``encounter_id``
and ``patient_nbr`` changes nothing (identifiers never reach the features); and more prior
inpatient stays never lower the risk, a domain fact the model declares as a monotone constraint
(``monotonic_cst``) so the check holds by construction and catches a model that drops it.

Fairness: ROC AUC per gender, race and age band (groups of at least ``min_group_size`` holdout rows)
may differ by at most ``max_group_gap``; recall per group is reported in the model card too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops.data.readmission import cleaning
from mlops.data.readmission.vocabulary import FEATURES, TARGET
from mlops.spec import (
    Behaviour,
    DataGate,
    Directional,
    Distribution,
    Invariance,
    ModelGate,
    ProjectSpec,
    RawInvariance,
    SearchSpace,
)

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from mlops.settings import Settings

GENERATED_ROWS = 20_000


def load(settings: Settings) -> pd.DataFrame:
    """The cleaned real file when ``MLOPS_DATA_PATH`` is set, else generated rows (seeded)."""
    if settings.data_path is not None:
        return cleaning.load_diabetic_csv(settings.data_path)
    from mlops.data.readmission.generator import generate

    return cleaning.clean(generate(GENERATED_ROWS, seed=settings.seed))


# More prior inpatient stays never lower the 30-day risk: declared to the model, checked by the gate.
MONOTONE_INCREASING = ("number_inpatient",)


def _raw_rows(rows: int, seed: int) -> pd.DataFrame:
    """Raw-format encounters for the identifier invariance check (the generator: no file needed)."""
    from mlops.data.readmission.generator import generate

    return generate(rows, seed=seed)


DEFAULTS: dict[str, Any] = {
    "learning_rate": 0.1,
    "max_iter": 100,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 40,
    "l2_regularization": 1.0,
}

# Ranges around the defaults, kept where the behavioural gate holds (small leaves on a noisy lab
# count would flip more predictions than it allows). Few default trials: each fits `folds` models
# on ~11,000 rows; a wider search is `mlops train --trials N`, spread over workers.
SEARCH = SearchSpace(
    parameters={
        "learning_rate": Distribution("float", 0.03, 0.3, log=True),
        "max_iter": Distribution("int", 50, 200),
        "max_leaf_nodes": Distribution("int", 7, 31),
        "min_samples_leaf": Distribution("int", 20, 100),
        "l2_regularization": Distribution("float", 0.1, 10.0, log=True),
    },
    trials=4,
    folds=3,
)


def build_model(spec: ProjectSpec, seed: int, params: dict[str, Any] | None = None) -> Pipeline:
    """HistGradientBoosting with ``DEFAULTS``, overridden by ``params`` (a search's choice)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    from mlops.ml.model import tabular_pipeline

    estimator = HistGradientBoostingClassifier(
        **{**DEFAULTS, **(params or {})},
        class_weight="balanced",
        early_stopping=False,
        random_state=seed,
        # Keyed by name: the one-hot block makes positions depend on the data, names do not.
        monotonic_cst=dict.fromkeys(MONOTONE_INCREASING, 1),
    )
    pipe = tabular_pipeline(spec, estimator)
    # Named columns out of the preprocessing, so the estimator can resolve monotonic_cst's names.
    pipe.named_steps["preprocess"].set_output(transform="pandas")
    return pipe


BEHAVIOUR = Behaviour(
    invariance=(
        Invariance(
            "lab count noise",
            column="num_lab_procedures",
            shifts=(-2, -1, 1, 2),
            max_failure_rate=0.05,
        ),
    ),
    raw_invariance=(RawInvariance("identifiers", columns=("encounter_id", "patient_nbr"), source=_raw_rows),),
    directional=tuple(
        Directional(f"more {name} never lowers the risk", column=name, shifts=(1, 2, 3), class_index=1)
        for name in MONOTONE_INCREASING
    ),
)


SPEC = ProjectSpec(
    name="readmission",
    description=(
        "Risk that a diabetic inpatient is readmitted within 30 days of discharge, from the encounter "
        "record (schema of the Diabetes 130-US hospitals 1999-2008 data)."
    ),
    features=FEATURES,
    target=TARGET,
    class_names=("no_readmission_30d", "readmitted_30d"),
    positive_class=1,
    load=load,
    build_model=build_model,
    primary_metric="roc_auc",
    example={
        "time_in_hospital": 5,
        "num_lab_procedures": 44,
        "num_procedures": 1,
        "num_medications": 18,
        "number_outpatient": 0,
        "number_emergency": 0,
        "number_inpatient": 2,
        "number_diagnoses": 9,
        "n_active_meds": 2,
        "n_med_changes": 1,
        "race": "Caucasian",
        "gender": "Female",
        "age_band": "70-80",
        "admission_type": "emergency",
        "discharge_group": "snf",
        "admission_source": "emergency_room",
        "medical_specialty": "InternalMedicine",
        "diag_1_group": "circulatory",
        "A1Cresult": "not_measured",
        "max_glu_serum": "not_measured",
        "insulin": "Up",
        "metformin": "Steady",
        "change": "Ch",
        "diabetesMed": "Yes",
    },
    data_gate=DataGate(min_rows=1_000, max_missing_rate=0.05, max_duplicate_rate=0.05, min_class_rate=0.03),
    model_gate=ModelGate(
        minimums={"roc_auc": 0.65, "average_precision": 0.2},
        sensitive_features=("gender", "race", "age_band"),
        # ROC AUC per group: recall at one threshold swings with few positives and with the real age
        # effect (gap up to 0.50 across seeds); the AUC gap over groups of >= 500 rows passes 11 of 11 seeds.
        fairness_metric="roc_auc",
        max_group_gap=0.15,
        min_group_size=500,  # ~50 positives: below that a group's AUC is mostly noise
    ),
    promotion_target="staging",
    prepare=cleaning.features,
    behaviour=BEHAVIOUR,
    search=SEARCH,
)
