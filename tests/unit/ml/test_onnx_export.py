from __future__ import annotations

import numpy as np

from mlops.data.split import split
from mlops.ml import evaluate as ev
from mlops.ml import model as ml
from mlops.ml import onnx_export


def test_train_evaluate_and_onnx_parity(settings, iris_spec) -> None:
    train, holdout = split(iris_spec.load(settings), iris_spec.target, 0.3, 42)
    model = ml.train(iris_spec, train, 42)
    x, y = ev.holdout_xy(iris_spec, holdout)
    proba = model.predict_proba(x)
    metrics = ev.metrics(iris_spec, y, proba)
    assert metrics["accuracy"] > 0.85 and metrics["f1_macro"] > 0.85
    assert sum(map(sum, ev.confusion(iris_spec, y, proba))) == len(holdout)
    assert ev.confusion_png(iris_spec, ev.confusion(iris_spec, y, proba)).startswith(b"\x89PNG")

    onnx_bytes = onnx_export.export(iris_spec, model)
    parity = onnx_export.check_parity(iris_spec, model, onnx_bytes, holdout, 1e-4)
    assert parity.ok, parity
    assert parity.class_agreement == 1.0 and parity.max_prob_diff < 1e-4


def test_parity_detects_a_different_model(settings, iris_spec) -> None:
    train, holdout = split(iris_spec.load(settings), iris_spec.target, 0.3, 42)
    model = ml.train(iris_spec, train, 42)
    other = ml.train(iris_spec, train.sample(frac=0.3, random_state=1), 1)
    parity = onnx_export.check_parity(iris_spec, model, onnx_export.export(iris_spec, other), holdout, 1e-4)
    assert not parity.ok and parity.max_prob_diff > 1e-4


def test_broken_onnx_bytes_fail_parity_without_raising(settings, iris_spec) -> None:
    train, holdout = split(iris_spec.load(settings), iris_spec.target, 0.3, 42)
    model = ml.train(iris_spec, train, 42)
    parity = onnx_export.check_parity(iris_spec, model, b"not onnx", holdout, 1e-4)
    assert not parity.ok and parity.error


def test_to_frame_orders_columns_and_fills_missing(iris_spec) -> None:
    frame = ml.to_frame(iris_spec, [{"petal_width": 0.2, "sepal_length": "5.1"}])
    assert list(frame.columns) == iris_spec.feature_names
    assert frame.loc[0, "sepal_length"] == 5.1 and np.isnan(frame.loc[0, "sepal_width"])
