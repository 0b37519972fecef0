"""The model pipeline and its evaluation (``mlops.ml.model``, ``mlops.ml.evaluate``)."""

from __future__ import annotations

import numpy as np

from mlops.data.split import split
from mlops.ml import evaluate as ev
from mlops.ml import model as ml


def test_train_and_evaluate(settings, iris_spec) -> None:
    train, holdout = split(iris_spec.load(settings), iris_spec.target, 0.3, 42)
    model = ml.train(iris_spec, train, 42)
    x, y = ev.holdout_xy(iris_spec, holdout)
    proba = model.predict_proba(x)
    metrics = ev.metrics(iris_spec, y, proba)
    assert metrics["accuracy"] > 0.85 and metrics["f1_macro"] > 0.85
    assert sum(map(sum, ev.confusion(iris_spec, y, proba))) == len(holdout)
    assert ev.confusion_png(iris_spec, ev.confusion(iris_spec, y, proba)).startswith(b"\x89PNG")


def test_to_frame_orders_columns_and_fills_missing(iris_spec) -> None:
    frame = ml.to_frame(iris_spec, [{"petal_width": 0.2, "sepal_length": "5.1"}])
    assert list(frame.columns) == iris_spec.feature_names
    assert frame.loc[0, "sepal_length"] == 5.1 and np.isnan(frame.loc[0, "sepal_width"])
