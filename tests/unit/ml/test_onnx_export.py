"""ONNX export and the parity check that decides the serving runtime (``mlops.ml.onnx_export``)."""

from __future__ import annotations

from mlops.data.split import split
from mlops.ml import model as ml
from mlops.ml import onnx_export


def test_onnx_parity(settings, iris_spec) -> None:
    train, holdout = split(iris_spec.load(settings), iris_spec.target, 0.3, 42)
    model = ml.train(iris_spec, train, 42)
    onnx_bytes = onnx_export.export(iris_spec, model)
    parity = onnx_export.check_parity(iris_spec, model, onnx_bytes, holdout, 1e-4)
    assert parity.ok, parity
    assert parity.rows == len(holdout) and parity.error == ""
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


def test_parity_on_mixed_columns_with_missing_categoricals() -> None:
    """Readmission (numerics and categoricals, "" and null gaps): exact class agreement."""
    from mlops.data.readmission.cleaning import clean
    from mlops.data.readmission.generator import generate
    from mlops.projects import get_project

    spec = get_project("readmission")
    data = clean(generate(2_000, seed=4))
    model = ml.train(spec, data.iloc[:1_500], 0)
    holdout = data.iloc[1_500:].reset_index(drop=True)
    holdout["race"] = holdout["race"].astype(object)
    holdout.loc[holdout.index % 7 == 0, "race"] = None
    parity = onnx_export.check_parity(spec, model, onnx_export.export(spec, model), holdout, 1e-4)
    assert parity.ok and parity.class_agreement == 1.0, parity
