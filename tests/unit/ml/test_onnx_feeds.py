"""The one builder of ONNX feeds: every input shape gives the same feeds, by one dtype rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops.ml import onnx_feeds
from mlops.ml.model import tabular_pipeline, to_frame
from mlops.spec import Feature, ProjectSpec


def _model(spec: ProjectSpec, seed: int):
    from sklearn.linear_model import LogisticRegression

    return tabular_pipeline(spec, LogisticRegression(max_iter=500))


SPEC = ProjectSpec(
    name="mixed",
    description="two numerics and two categoricals, one of them nullable",
    features=(
        Feature("age", minimum=0, maximum=120),
        Feature("visits", minimum=0, maximum=50, integer=True),
        Feature("colour", "categorical", categories=("red", "green", "blue", ""), nullable=True),
        Feature("size", "categorical", categories=("S", "M", "L")),
    ),
    target="y",
    class_names=("no", "yes"),
    load=lambda settings: pd.DataFrame(),
    build_model=_model,
    primary_metric="roc_auc",
    example={"age": 40.0, "visits": 2, "colour": "red", "size": "M"},
    positive_class=1,
)

# Every form a missing value takes: None, NaN and pandas.NA in cells, "" as recorded, an absent key.
ROWS: list[dict] = [
    {"age": 40.5, "visits": 2, "colour": "red", "size": "M"},
    {"age": None, "visits": 0, "colour": None, "size": "S"},
    {"age": 71.0, "visits": 7, "colour": "", "size": "L"},
    {"age": 18.0, "visits": np.nan, "colour": np.nan, "size": "S"},
    {"age": 33.0, "visits": 1, "colour": pd.NA, "size": "M"},
    {"age": 55.0, "visits": 3, "size": "L"},
    {"age": 64.25, "visits": 12, "colour": "blue", "size": "M"},
]
EXPECTED_COLOUR = ["red", "", "", "", "", "", "blue"]


def _shapes() -> dict[str, onnx_feeds.Feeds]:
    """The same rows as request dicts, a plain frame, the ``to_frame`` frame, and pandas
    categoricals (what batch scoring reads from Arrow dictionaries)."""
    frame = pd.DataFrame(ROWS, columns=SPEC.feature_names)
    categorical = frame.assign(
        colour=frame["colour"].astype("category"), size=frame["size"].astype("category")
    )
    assert categorical["colour"].isna().sum() == 4  # the nulls are codes -1, not a category
    return {
        "rows": onnx_feeds.from_rows(SPEC, ROWS),
        "frame": onnx_feeds.from_frame(SPEC, frame),
        "to_frame": onnx_feeds.from_frame(SPEC, to_frame(SPEC, ROWS)),
        "categorical": onnx_feeds.from_frame(SPEC, categorical[["size", "colour", "visits", "age"]]),
    }


def test_every_input_shape_gives_identical_feeds() -> None:
    shapes = _shapes()
    reference = shapes.pop("rows")
    assert list(reference) == SPEC.feature_names
    for shape, feeds in shapes.items():
        assert list(feeds) == SPEC.feature_names, shape
        for name, values in reference.items():
            got = feeds[name]
            assert got.dtype == values.dtype and got.shape == values.shape, (shape, name)
            if values.dtype == object:
                assert got.ravel().tolist() == values.ravel().tolist(), (shape, name)
            else:
                np.testing.assert_array_equal(got, values, err_msg=f"{shape} {name}")


def test_dtype_rule_float32_numerics_and_str_categoricals() -> None:
    for shape, feeds in _shapes().items():
        for f in SPEC.features:
            values = feeds[f.name]
            assert values.shape == (len(ROWS), 1), (shape, f.name)
            if f.kind == "numeric":
                assert values.dtype == np.float32, (shape, f.name)
            else:
                assert values.dtype == object, (shape, f.name)
                assert all(type(v) is str for v in values.ravel()), (shape, f.name)


def test_missing_values() -> None:
    for shape, feeds in _shapes().items():
        # Missing categoricals are "" (never None or "None"/"nan"/"<NA>"): the imputer's missing value.
        assert feeds["colour"].ravel().tolist() == EXPECTED_COLOUR, shape
        # Missing numerics are NaN (the median imputer's missing value).
        assert np.isnan(feeds["age"][1, 0]) and np.isnan(feeds["visits"][3, 0]), shape
        assert feeds["age"][0, 0] == np.float32(40.5) and feeds["visits"][6, 0] == 12.0, shape


def test_non_text_categoricals_become_their_text_in_every_shape() -> None:
    rows = [{"age": 1.0, "visits": 1, "colour": 3, "size": True}, {"age": 2.0, "visits": 1, "colour": 7}]
    frame = pd.DataFrame(rows, columns=SPEC.feature_names)
    assert frame["colour"].dtype == "int64" and frame["size"].dtype == object
    for feeds in (onnx_feeds.from_rows(SPEC, rows), onnx_feeds.from_frame(SPEC, frame)):
        assert feeds["colour"].ravel().tolist() == ["3", "7"]
        assert feeds["size"].ravel().tolist() == ["True", ""]


def test_numeric_text_in_a_frame_is_coerced_like_to_frame() -> None:
    frame = pd.DataFrame({"age": ["41.5", "old"], "visits": [1, 2], "colour": ["red", "red"], "size": "S"})
    feeds = onnx_feeds.from_frame(SPEC, frame)
    expected = to_frame(SPEC, frame)["age"].to_numpy().astype(np.float32)
    np.testing.assert_array_equal(feeds["age"].ravel(), expected)
    assert feeds["age"][0, 0] == np.float32(41.5) and np.isnan(feeds["age"][1, 0])


def test_an_empty_batch_gives_empty_feeds_of_the_right_shape() -> None:
    for feeds in (onnx_feeds.from_rows(SPEC, []), onnx_feeds.from_frame(SPEC, to_frame(SPEC, []))):
        assert all(v.shape == (0, 1) for v in feeds.values())
        assert feeds["age"].dtype == np.float32 and feeds["colour"].dtype == object


def test_a_frame_without_a_feature_is_refused_with_its_name() -> None:
    with pytest.raises(KeyError, match="size"):
        onnx_feeds.from_frame(SPEC, pd.DataFrame(ROWS).drop(columns=["size"]))


def test_every_shape_scores_the_same_probabilities_as_the_native_model() -> None:
    from mlops.ml.onnx_export import export
    from mlops.ml.onnx_scorer import OnnxScorer

    rng = np.random.default_rng(0)
    n = 400
    train = pd.DataFrame(
        {
            "age": rng.uniform(18, 90, n),
            "visits": rng.integers(0, 10, n).astype(float),
            "colour": rng.choice(["red", "green", "blue", ""], n),
            "size": rng.choice(["S", "M", "L"], n),
        }
    )
    train["y"] = ((train["age"] > 50) ^ (train["colour"] == "red")).astype(int)
    native = _model(SPEC, 0).fit(to_frame(SPEC, train), train["y"])
    scorer = OnnxScorer(SPEC, export(SPEC, native))
    expected = native.predict_proba(to_frame(SPEC, ROWS))
    for shape, feeds in _shapes().items():
        proba = scorer.proba(feeds)
        assert proba.shape == (len(ROWS), 2), shape
        np.testing.assert_allclose(proba, expected, atol=1e-5, err_msg=shape)
