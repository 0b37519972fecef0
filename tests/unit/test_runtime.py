"""The one scorer: ONNX Runtime and native scorers, and ``LoadedModel`` over them (no registry)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops import runtime
from mlops.ml import onnx_feeds
from mlops.ml.model import to_frame


@pytest.fixture(scope="module")
def readmission():
    """A small real readmission model, its ONNX export, and feature rows with every kind of gap."""
    from mlops.data.readmission import cleaning, generator
    from mlops.ml.model import train
    from mlops.ml.onnx_export import export
    from mlops.projects import get_project

    spec = get_project("readmission")
    raw = generator.generate(2_500, seed=11)
    native = train(spec, cleaning.clean(raw), seed=0)
    rows = spec.prepare(raw.head(300)).reset_index(drop=True)
    for name in ("race", "gender", "diag_1_group"):
        rows[name] = rows[name].astype(object)
        rows.loc[rows.index % 10 == 1, name] = None
        rows.loc[rows.index % 10 == 2, name] = ""
    rows.loc[5, "num_lab_procedures"] = np.nan
    return spec, native, export(spec, native), rows


def test_the_three_input_shapes_score_identical_probabilities(readmission) -> None:
    spec, native, onnx_bytes, rows = readmission
    scorer = runtime.OnnxScorer(spec, onnx_bytes, threads=1)
    dicts = [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
        for r in rows.to_dict("records")
    ]
    categorical = rows.astype({name: "category" for name in spec.categorical_features})
    by_rows = scorer.proba_rows(dicts)
    by_frame = scorer.proba_frame(rows)
    by_categorical = scorer.proba(scorer.inputs(categorical))
    assert by_rows.shape == (len(rows), 2) and by_rows.dtype == np.float32
    np.testing.assert_array_equal(by_rows, by_frame)
    np.testing.assert_array_equal(by_rows, by_categorical)
    np.testing.assert_array_equal(by_rows, scorer.proba(onnx_feeds.from_rows(spec, dicts)))
    # ... and they are the native model's, to float32 precision
    np.testing.assert_allclose(by_rows, native.predict_proba(to_frame(spec, rows)), atol=1e-5)


def test_native_scorer_answers_the_same_calls(readmission) -> None:
    spec, native, _, rows = readmission
    scorer = runtime.NativeScorer(spec, native)
    expected = native.predict_proba(to_frame(spec, rows))
    np.testing.assert_array_equal(scorer.proba_frame(rows), expected)
    np.testing.assert_array_equal(scorer.proba_rows(rows.to_dict("records")), expected)
    inputs = scorer.inputs(rows)
    nulls = rows["race"].isna()
    assert list(inputs.columns) == spec.feature_names
    assert nulls.sum() == 30 and (inputs.loc[nulls, "race"] == "").all()  # the model's missing value
    np.testing.assert_array_equal(scorer.proba(inputs), expected)


def test_loaded_model_predicts_the_same_on_either_runtime(readmission) -> None:
    spec, native, onnx_bytes, rows = readmission
    onnx = runtime.LoadedModel(spec, "m", "3", "run", "onnx", runtime.OnnxScorer(spec, onnx_bytes))
    plain = runtime.LoadedModel(spec, "m", "3", "run", "native", runtime.NativeScorer(spec, native))
    records = rows.to_dict("records")
    classes, proba = onnx.predict_rows(records)
    native_classes, native_proba = plain.predict_rows(records)
    np.testing.assert_allclose(proba, native_proba, atol=1e-5)
    assert (classes == native_classes).all() and set(classes) == {0, 1}
    frame_classes, _ = onnx.predict(rows)
    assert (frame_classes == classes).all()


def test_the_stored_threshold_decides_the_class(readmission) -> None:
    spec, _, onnx_bytes, rows = readmission
    scorer = runtime.OnnxScorer(spec, onnx_bytes)
    proba = scorer.proba_frame(rows)[:, 1]
    cut = float(np.median(proba))
    model = runtime.LoadedModel(spec, "m", "3", "run", "onnx", scorer, threshold=cut)
    classes, _ = model.predict_rows(rows.to_dict("records"))
    assert (classes == (proba >= cut)).all() and 0 < classes.sum() < len(rows)


def test_one_request_row_and_the_use_case_example(readmission) -> None:
    spec, _, onnx_bytes, _ = readmission
    model = runtime.LoadedModel(spec, "m", "3", "run", "onnx", runtime.OnnxScorer(spec, onnx_bytes, 1))
    classes, proba = model.predict_rows([spec.example])
    assert proba.shape == (1, 2) and abs(float(proba.sum()) - 1) < 1e-5 and classes.shape == (1,)
    # a missing nullable categorical scores like its recorded empty form
    gap = {**spec.example, "race": None}
    np.testing.assert_array_equal(
        model.predict_rows([gap])[1], model.predict_rows([{**spec.example, "race": ""}])[1]
    )


def test_bytes_that_are_not_onnx_are_refused(readmission) -> None:
    spec = readmission[0]
    with pytest.raises(Exception, match=r"(?i)protobuf|invalid|load"):
        runtime.OnnxScorer(spec, b"not onnx")


def test_the_runtime_scores_with_the_ml_scorer_the_parity_check_uses() -> None:
    from mlops.ml.onnx_scorer import OnnxScorer

    assert runtime.OnnxScorer is OnnxScorer


def test_empty_frames_score_to_no_rows(readmission) -> None:
    spec, _, onnx_bytes, rows = readmission
    scorer = runtime.OnnxScorer(spec, onnx_bytes)
    assert scorer.proba_frame(pd.DataFrame(columns=rows.columns)).shape[0] == 0


class FixedScorer:
    """A scorer stand-in that answers ``proba`` whatever it is asked: a model that loads but is wrong."""

    def __init__(self, proba: list[list[float]]) -> None:
        self.answer = np.asarray(proba, dtype=float)

    def inputs(self, frame: pd.DataFrame) -> pd.DataFrame:
        return frame

    def proba(self, inputs: object) -> np.ndarray:
        return self.answer

    def proba_rows(self, rows: object) -> np.ndarray:
        return self.answer

    def proba_frame(self, frame: pd.DataFrame) -> np.ndarray:
        return self.answer


@pytest.mark.parametrize(
    ("proba", "message"),
    [
        ([[np.nan, 0.5, 0.5]], r"probabilities \[\[nan"),
        ([[np.inf, 0.0, 0.0]], "probabilities"),
        ([[0.5, 0.5]], r"shape \(1, 2\), not \(1, 3\)"),
        ([[0.2, 0.3, 0.5], [0.2, 0.3, 0.5]], r"shape \(2, 3\)"),
        ([[0.2, 0.3, 0.4]], "summing to 0.9"),
        ([[1.5, -0.25, -0.25]], "probabilities"),
    ],
)
def test_the_servable_check_refuses_garbage_probabilities(iris_spec, proba, message) -> None:
    with pytest.raises(ValueError, match=message):
        runtime.check_scorer(iris_spec, FixedScorer(proba))


def test_the_servable_check_accepts_a_distribution_and_a_real_model(readmission, iris_spec) -> None:
    runtime.check_scorer(iris_spec, FixedScorer([[0.1, 0.2, 0.7]]))
    spec, native, onnx_bytes, _ = readmission
    runtime.check_scorer(spec, runtime.OnnxScorer(spec, onnx_bytes, threads=1), threshold=0.3)
    runtime.check_scorer(spec, runtime.NativeScorer(spec, native))
    with pytest.raises(ValueError, match="summing"):  # a real model whose scores are not probabilities
        runtime.check_scorer(
            spec, FixedScorer((native.predict_proba(to_frame(spec, [spec.example])) * 0.5).tolist())
        )
