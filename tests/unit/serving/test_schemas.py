"""The request schema comes from the use-case spec: a new use case needs no new code."""

from __future__ import annotations

import dataclasses
import json

import pytest
from pydantic import ValidationError

from mlops.projects import PROJECTS, get_project
from mlops.serving.schemas import build_row_model, feedback_model, row_model
from mlops.spec import Feature


def _mixed_spec(iris_spec):
    features = (
        Feature("age", minimum=0, maximum=120, integer=True),
        Feature("weight", minimum=0.0, maximum=500.0, nullable=True),
        Feature("race", kind="categorical", categories=("A", "B"), nullable=True),
        Feature("note", kind="categorical"),
    )
    example = {"age": 40, "weight": 70.5, "race": "A", "note": "x"}
    return dataclasses.replace(iris_spec, name="mixed", features=features, example=example)


def test_mixed_spec_types_ranges_categories_and_nulls(iris_spec) -> None:
    Row = build_row_model(_mixed_spec(iris_spec))
    assert Row.__name__ == "MixedFeatures"
    assert Row(age=40, note="x").model_dump() == {"age": 40, "weight": None, "race": None, "note": "x"}
    for bad in ({"age": 40.5}, {"age": 121}, {"age": "40"}, {"race": "C"}, {"weight": float("nan")}):
        with pytest.raises(ValidationError) as err:
            Row(**{"age": 40, "note": "x", **bad})
        assert err.value.errors()[0]["loc"] == (next(iter(bad)),)
    with pytest.raises(ValidationError):
        Row(age=40)  # a non-nullable categorical is required
    schema = Row.model_json_schema()
    assert schema["properties"]["race"]["anyOf"][0]["enum"] == ["A", "B"]
    assert schema["examples"] == [{"age": 40, "weight": 70.5, "race": "A", "note": "x"}]


@pytest.mark.parametrize("project", sorted(PROJECTS))
def test_every_project_example_is_a_valid_request(project: str) -> None:
    spec = get_project(project)
    row = row_model(project).model_validate(spec.example)
    assert set(row.model_dump()) == set(spec.feature_names)


def test_feedback_schema_lists_the_labels_the_service_accepts() -> None:
    """The published enum is what validation accepts: ids and names, nothing else (no "" nor true)."""
    Body = feedback_model("iris")
    schema = Body.model_json_schema()["properties"]["true_label"]
    assert schema["enum"] == [0, 1, 2, "setosa", "versicolor", "virginica"]
    for label in schema["enum"]:
        assert Body.model_validate({"request_id": "r", "true_label": label}).true_label == label
    for bad in ("", "0", 3, -1, True, "Setosa", None):
        with pytest.raises(ValidationError):
            Body.model_validate_json(json.dumps({"request_id": "r", "true_label": bad}))
    names = get_project("readmission").class_names
    enum = feedback_model("readmission").model_json_schema()["properties"]["true_label"]["enum"]
    assert enum == [0, 1, *names]
