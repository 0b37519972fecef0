"""Behavioural checks (mlops.ml.behaviour): the real models pass; a model that breaks a check fails it,
and the failing cases are named."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from sklearn.tree import DecisionTreeClassifier

from mlops.data.readmission import cleaning
from mlops.data.readmission.generator import generate
from mlops.data.split import split
from mlops.ml import behaviour
from mlops.ml import model as ml
from mlops.ml.model import tabular_pipeline
from mlops.projects import get_project
from mlops.spec import Behaviour, MinimumFunctionality, RawInvariance

READMISSION = get_project("readmission")
IRIS = get_project("iris")


@pytest.fixture(scope="module")
def readmission_data() -> tuple[pd.DataFrame, pd.DataFrame]:
    return split(cleaning.clean(generate(4_000, seed=3)), READMISSION.target, 0.3, 3)


@pytest.fixture(scope="module")
def readmission_model(readmission_data):
    """The real use case's model (one fit; argmax instead of a tuned threshold keeps the test fast)."""
    train, _ = readmission_data
    return ml.train(READMISSION, train, 0), None


def _tree(spec, frame: pd.DataFrame, labels: np.ndarray, depth: int | None = None):
    """A plain decision tree behind the use case's preprocessing, fitted on ``labels``."""
    model = tabular_pipeline(spec, DecisionTreeClassifier(max_depth=depth, random_state=0))
    return model.fit(ml.to_frame(spec, frame), labels)


def _by_kind(results: list[behaviour.CheckResult]) -> dict[str, behaviour.CheckResult]:
    return {r.kind: r for r in results}


def test_the_readmission_model_passes_every_declared_check(readmission_data, readmission_model) -> None:
    _, holdout = readmission_data
    model, threshold = readmission_model
    results = behaviour.run(READMISSION, holdout, model.predict_proba, threshold)
    assert sorted(r.kind for r in results) == ["directional", "invariance", "raw_invariance"]
    assert all(r.passed for r in results), [r.describe() for r in results]
    checked = _by_kind(results)
    assert checked["directional"].failures == ()  # the monotone constraint: holds by construction
    assert checked["raw_invariance"].failures == () and checked["raw_invariance"].cases == 200
    assert model[-1].monotonic_cst == {"number_inpatient": 1}


def test_the_iris_model_classifies_the_typical_flowers(settings) -> None:
    train, holdout = split(IRIS.load(settings), IRIS.target, 0.3, 42)
    model = ml.train(IRIS, train, 42)
    (result,) = behaviour.run(IRIS, holdout, model.predict_proba, None)
    assert result.kind == "minimum_functionality" and result.passed and result.cases == 6


def test_a_model_trained_on_shifted_labels_fails_minimum_functionality(settings) -> None:
    frame = IRIS.load(settings)
    model = ml.train(IRIS, frame.assign(species=(frame["species"] + 1) % 3), 0)
    (result,) = behaviour.run(IRIS, frame, model.predict_proba, None)
    assert not result.passed and len(result.failures) == 6
    assert str(result.failures[0]).startswith("row 0 (labelled setosa): expected setosa -> versicolor (p=")
    assert "behaviour minimum_functionality 'typical flowers': 6 of 6 cases fail" in result.describe()


def test_a_model_that_reads_lab_parity_fails_invariance(readmission_data) -> None:
    train, holdout = readmission_data
    model = _tree(READMISSION, train, (train["num_lab_procedures"] % 2).to_numpy())
    checked = _by_kind(behaviour.run(READMISSION, holdout, model.predict_proba, 0.5))
    result = checked["invariance"]
    assert not result.passed and len(result.failures) > result.allowed == 40
    row = result.failures[0]
    assert row.row in holdout.index and row.perturbation.startswith("num_lab_procedures ")
    assert row.before != row.after
    assert "(+" in result.describe() and result.describe().count("row ") == 3


def test_a_model_that_learned_the_opposite_direction_fails_the_directional_check(readmission_data) -> None:
    """No monotone constraint and data where prior stays lower the risk: the gate catches it."""
    train, holdout = readmission_data
    model = _tree(READMISSION, train, (train["number_inpatient"] == 0).astype(int).to_numpy(), depth=3)
    result = _by_kind(behaviour.run(READMISSION, holdout, model.predict_proba, 0.5))["directional"]
    assert not result.passed
    case = result.failures[0]
    assert case.perturbation == "number_inpatient 0 -> 1 (shift +1, expected readmitted_30d increasing)"
    assert float(case.after.removeprefix("p=")) < float(case.before.removeprefix("p="))


def test_an_identifier_that_leaks_through_prepare_fails_raw_invariance(
    readmission_data, readmission_model
) -> None:
    """A prepare that lets the encounter id reach a feature: the raw-row check names the rows."""
    _, holdout = readmission_data
    model, threshold = readmission_model

    def leaky(raw: pd.DataFrame) -> pd.DataFrame:
        out = cleaning.features(raw)
        if "encounter_id" in raw:
            out["number_inpatient"] = pd.to_numeric(raw["encounter_id"]) % 5
        return out

    result = _by_kind(
        behaviour.run(replace(READMISSION, prepare=leaky), holdout, model.predict_proba, threshold)
    )["raw_invariance"]
    assert not result.passed
    assert (
        "encounter_id" in result.failures[0].perturbation and "patient_nbr" in result.failures[0].perturbation
    )


def test_checks_that_cannot_run_fail_closed() -> None:
    spec = replace(
        IRIS,
        behaviour=Behaviour(
            raw_invariance=(
                RawInvariance("ids", ("id",), source=lambda n, seed: pd.DataFrame({"id": range(n)})),
            ),
            minimum_functionality=(
                MinimumFunctionality("typo", cases=(({"sepal_length": 5.0}, "setosaa"),)),
            ),
        ),
    )
    iris_rows = pd.DataFrame([IRIS.example] * 3).assign(species=0)
    results = behaviour.run(spec, iris_rows, lambda frame: np.full((len(frame), 3), 1 / 3), None)
    assert [(r.passed, r.error) for r in results] == [
        (False, "the use case has no prepare step"),
        (False, "unknown class ['setosaa']"),
    ]
    wrong_shape = behaviour.run(IRIS, iris_rows, lambda frame: np.zeros((1, 3)), None)
    assert (
        not wrong_shape[0].passed and "predict_proba answered shape (1, 3) for 6 rows" in wrong_shape[0].error
    )
    assert "could not run: ValueError" in wrong_shape[0].describe()
