"""The data gate and the metric gate (mlops.governance.gates): every reason named."""

from __future__ import annotations

import numpy as np
import pytest

from mlops.data.validation import data_reasons
from mlops.errors import GateFailed
from mlops.governance.gates import check_data, metric_reasons


def test_iris_passes_the_data_gate(settings, iris_spec) -> None:
    frame = iris_spec.load(settings)
    assert len(frame) == 150
    assert data_reasons(iris_spec, frame) == []


def test_broken_dataset_lists_every_reason(settings, iris_spec) -> None:
    frame = iris_spec.load(settings)
    frame.loc[0:4, "petal_width"] = -3.0
    frame.loc[5:20, "sepal_length"] = np.nan
    frame = frame.drop(columns=[])
    frame["species"] = frame["species"].where(frame["species"] != 2, 1)
    with pytest.raises(GateFailed) as info:
        check_data(iris_spec, frame)
    text = "\n".join(info.value.reasons)
    assert "petal_width" in text and "greater_than_or_equal_to" in text
    assert "'sepal_length' is 10.7% missing" in text
    assert "class 'virginica' is 0.0%" in text


def test_missing_column_is_named(settings, iris_spec) -> None:
    frame = iris_spec.load(settings).drop(columns=["sepal_width"])
    assert data_reasons(iris_spec, frame) == ["missing column(s): sepal_width"]


def test_wrong_type_is_reported(settings, iris_spec) -> None:
    frame = iris_spec.load(settings)
    frame["sepal_width"] = frame["sepal_width"].astype(object)
    frame.loc[3, "sepal_width"] = "wide"
    assert any("sepal_width" in r for r in data_reasons(iris_spec, frame))


def test_metric_gate(iris_spec) -> None:
    assert metric_reasons(iris_spec, {"f1_macro": 0.95, "accuracy": 0.95}) == []
    reasons = metric_reasons(iris_spec, {"f1_macro": 0.5})
    assert reasons == ["f1_macro 0.5000 is below the minimum 0.8000", "metric 'accuracy' was not computed"]


def test_model_gate_refuses_a_model_that_fails_a_behavioural_check(settings, iris_spec) -> None:
    """Trained on shifted labels: the minimum-functionality reason names the check and 3 cases."""
    from mlops.governance.gates import behaviour_reasons, model_gate
    from mlops.ml import model as ml
    from mlops.ml.evaluate import holdout_xy

    frame = iris_spec.load(settings)
    model = ml.train(iris_spec, frame.assign(species=(frame["species"] + 1) % 3), 0)
    proba = model.predict_proba(holdout_xy(iris_spec, frame)[0])
    _, _, without = model_gate(iris_spec, frame, proba, None)
    assert not any(r.startswith("behaviour") for r in without)  # the metric-only call sites are unchanged
    _, _, reasons = model_gate(iris_spec, frame, proba, None, predict_proba=model.predict_proba)
    (reason,) = [r for r in reasons if r.startswith("behaviour")]
    assert reason.startswith(
        "behaviour minimum_functionality 'typical flowers': 6 of 6 cases fail (allowed 0): "
    )
    assert reason.count("row ") == 3 and reason.endswith("(+3 more)")
    assert behaviour_reasons(iris_spec, frame, model.predict_proba, None) == [reason]


def test_model_gate_passes_a_sound_model_with_its_behaviour_checked(settings, iris_spec) -> None:
    from mlops.data.split import split
    from mlops.governance.gates import behaviour_results, model_gate
    from mlops.ml import model as ml
    from mlops.ml.evaluate import holdout_xy

    train, holdout = split(iris_spec.load(settings), iris_spec.target, 0.3, 42)
    model = ml.train(iris_spec, train, 42)
    proba = model.predict_proba(holdout_xy(iris_spec, holdout)[0])
    results = behaviour_results(iris_spec, holdout, model.predict_proba, None)
    assert [r.as_dict()["passed"] for r in results] == [True]
    assert model_gate(iris_spec, holdout, proba, None, behaviour=results)[2] == []
    assert model_gate(iris_spec, holdout, proba, None, predict_proba=model.predict_proba)[2] == []


SERVED = [
    {"type": "double", "name": "sepal_length", "required": True},
    {"type": "double", "name": "sepal_width", "required": True},
    {"type": "double", "name": "petal_length", "required": True},
]


def test_compatibility_same_inputs_pass_in_any_order() -> None:
    from mlops.governance.gates import compatibility_reasons

    assert compatibility_reasons(list(reversed(SERVED)), SERVED, breaking_approved=False) == []
    assert compatibility_reasons(SERVED, None, breaking_approved=False) == []  # nothing served yet


def test_compatibility_names_added_removed_and_retyped_inputs() -> None:
    from mlops.governance.gates import compatibility_reasons

    candidate = [
        {"type": "double", "name": "sepal_length", "required": True},
        {"type": "string", "name": "sepal_width", "required": True},
        {"type": "double", "name": "petal_width", "required": True},
    ]
    (reason,) = compatibility_reasons(candidate, SERVED, breaking_approved=False)
    assert "added petal_width; removed petal_length; retyped sepal_width double -> string" in reason
    assert "marked breaking, with an approver" in reason
    assert compatibility_reasons(candidate, SERVED, breaking_approved=True) == []


def test_compatibility_fails_closed_without_a_candidate_signature() -> None:
    from mlops.governance.gates import compatibility_reasons

    (reason,) = compatibility_reasons(None, SERVED, breaking_approved=False)
    assert "records no input signature" in reason
    assert compatibility_reasons(None, SERVED, breaking_approved=True) == []
