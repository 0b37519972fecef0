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
