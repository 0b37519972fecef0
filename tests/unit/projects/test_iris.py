"""The iris use case's spec (mlops.projects.iris): its hand-labelled flowers are valid rows."""

from __future__ import annotations

from mlops.data.validation import data_reasons


def test_iris_minimum_functionality_cases_are_valid_labelled_rows(iris_spec) -> None:
    import pandas as pd

    (check,) = iris_spec.behaviour.minimum_functionality
    assert {label for _, label in check.cases} == set(iris_spec.class_names)
    rows = pd.DataFrame([row for row, _ in check.cases])
    rows[iris_spec.target] = [iris_spec.class_names.index(label) for _, label in check.cases]
    assert list(rows.columns[:-1]) == iris_spec.feature_names
    reasons = data_reasons(iris_spec, rows)
    assert not [r for r in reasons if "sepal" in r or "petal" in r], reasons
