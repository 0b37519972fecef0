"""Batch scoring on a real registered model: chunks, gate, atomic output, lineage columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlops import runtime
from mlops.batch import score_file
from mlops.errors import GateFailed, UsageError


@pytest.fixture
def model(settings, registered_iris):
    return runtime.load(settings, "iris", "1")


@pytest.fixture
def rows(settings, iris_spec) -> pd.DataFrame:
    frame = iris_spec.load(settings).drop(columns=["species"])
    return frame.sample(5_000, replace=True, random_state=0).reset_index(drop=True)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_scores_every_row_in_chunks(model, rows, tmp_path: Path, suffix: str) -> None:
    source = tmp_path / f"in{suffix}"
    rows.to_csv(source, index=False) if suffix == ".csv" else rows.to_parquet(source)
    result = score_file(model, source, tmp_path / "out.parquet", chunk_rows=1_000, run_id="run-1")
    assert result.rows == 5_000 and result.runtime == "onnx"
    out = pq.read_table(tmp_path / "out.parquet").to_pandas()
    assert out["row"].tolist() == list(range(5_000))
    assert set(out["model_version"].astype(str)) == {"1"} and set(out["run_id"].astype(str)) == {"run-1"}
    assert set(out["input_hash"].astype(str)) == {result.input_hash}
    # the same predictions as the native model, row for row
    from mlops.ml.model import to_frame
    from mlops.settings import get_settings

    native = runtime.load(get_settings(), "iris", "1", prefer_onnx=False).scorer

    expected = native.proba_frame(rows).argmax(axis=1)
    assert (native.proba(to_frame(model.spec, rows)).argmax(axis=1) == expected).all()
    assert (out["prediction"].to_numpy() == expected).all()
    assert sum(result.predictions_by_label.values()) == 5_000


def test_rows_failing_the_gate_are_kept_unscored_with_their_reasons(model, rows, tmp_path: Path) -> None:
    rows.loc[3_500, "petal_width"] = -1.0
    rows.loc[10, "sepal_length"] = 99.0
    rows.loc[3_500, "sepal_width"] = -2.0
    source = tmp_path / "in.parquet"
    rows.to_parquet(source)
    result = score_file(model, source, tmp_path / "out.parquet", chunk_rows=1_000)
    out = pq.read_table(tmp_path / "out.parquet").to_pandas()
    assert result.rows == 5_000 and result.rejected == 2
    assert sum(result.predictions_by_label.values()) == 4_998
    assert result.rejected_by_reason == {
        "petal_width below 0": 1,
        "sepal_length above 15": 1,
        "sepal_width below 0": 1,
    }
    rejected = out[out["rejected"].notna()]
    assert rejected["row"].tolist() == [10, 3_500]
    assert rejected["rejected"].tolist() == [
        "sepal_length above 15",
        "sepal_width below 0; petal_width below 0",
    ]
    assert rejected["prediction"].isna().all() and rejected["label"].isna().all()
    assert out.loc[out["rejected"].isna(), "prediction"].notna().all()


def test_a_file_missing_too_many_values_fails_and_leaves_the_target_untouched(model, rows, tmp_path) -> None:
    rows["petal_width"] = rows["petal_width"].astype(float)
    rows.loc[4_000:4_010, "petal_width"] = float("nan")  # iris allows no missing value at all
    source = tmp_path / "in.parquet"
    rows.to_parquet(source)
    target = tmp_path / "out.parquet"
    target.write_bytes(b"previous result")
    with pytest.raises(GateFailed, match="fails the data gate") as info:
        score_file(model, source, target, chunk_rows=1_000)
    assert info.value.reasons == ["column 'petal_width' is 0.2% missing (max 0.0%)"]
    assert target.read_bytes() == b"previous result"  # untouched
    assert not list(tmp_path.glob("*.partial"))


def test_a_missing_feature_column_fails_the_file(model, rows, tmp_path: Path) -> None:
    rows.drop(columns=["petal_width"]).to_parquet(tmp_path / "in.parquet")
    with pytest.raises(GateFailed) as info:
        score_file(model, tmp_path / "in.parquet", tmp_path / "out.parquet")
    assert info.value.reasons == ["missing column(s): petal_width"]
    assert not (tmp_path / "out.parquet").exists()


def test_unsupported_and_missing_inputs(model, tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(UsageError, match="unsupported"):
        score_file(model, tmp_path / "x.json", tmp_path / "o.parquet")
    with pytest.raises(UsageError, match="does not exist"):
        score_file(model, tmp_path / "nope.csv", tmp_path / "o.parquet")


# --- readmission: text columns travel dictionary-encoded (pandas categoricals) through the gate and feeds


@pytest.fixture(scope="module")
def readmission():
    from mlops.data.readmission.generator import generate
    from mlops.projects import get_project

    spec = get_project("readmission")
    return spec, generate(3_000, seed=3)


@pytest.fixture(scope="module")
def readmission_model(readmission):
    """A small real readmission model on ONNX Runtime (trained here: no registry needed)."""
    from mlops.data.readmission.cleaning import clean
    from mlops.ml.model import train
    from mlops.ml.onnx_export import export

    spec, raw = readmission
    native = train(spec, clean(raw), seed=0)
    scorer = runtime.OnnxScorer(spec, export(spec, native))
    model = runtime.LoadedModel(spec, "readmission-classifier", "7", "run-x", "onnx", scorer)
    return model, native


def _features_with_gaps(spec, raw) -> pd.DataFrame:
    """Feature rows with every form of a missing nullable categorical: null and ""."""
    frame = spec.prepare(raw).reset_index(drop=True)
    for name in ("race", "gender", "diag_1_group"):
        frame[name] = frame[name].astype(object)
        frame.loc[frame.index % 100 == 1, name] = None
        frame.loc[frame.index % 100 == 2, name] = ""
    return frame


@pytest.mark.parametrize("shape", ["raw.csv", "features.parquet"])
def test_dictionary_path_feeds_the_model_what_the_pandas_path_did(readmission, tmp_path, shape) -> None:
    """Same raw->feature mapping and the same ONNX inputs from the dictionary-encoded chunks as from
    iter_chunks + to_frame, and as from request rows."""
    from mlops.data.files import iter_batches, iter_chunks
    from mlops.ml import onnx_feeds
    from mlops.ml.model import to_frame

    spec, raw = readmission
    source = tmp_path / shape
    if shape == "raw.csv":
        raw.to_csv(source, index=False)
    else:
        _features_with_gaps(spec, raw).to_parquet(source)
    old = list(iter_chunks(source, 1_000))
    new = [b.to_pandas() for b in iter_batches(source, 1_000, dictionary=True)]
    assert len(old) == len(new) and any(str(t) == "category" for t in new[0].dtypes)
    for before, after in zip(old, new, strict=True):
        plain = to_frame(spec, spec.prepare(before))
        expected = onnx_feeds.from_frame(spec, plain)
        got = onnx_feeds.from_frame(spec, spec.prepare(after))
        from_rows = onnx_feeds.from_rows(spec, spec.prepare(before).to_dict("records"))
        for name, values in expected.items():
            for feeds in (got, from_rows):
                assert feeds[name].dtype == values.dtype and feeds[name].shape == values.shape, name
                if values.dtype == object:
                    assert feeds[name].ravel().tolist() == values.ravel().tolist(), name
                else:
                    np.testing.assert_array_equal(feeds[name], values, err_msg=name)


def test_readmission_scores_match_the_native_model(readmission, readmission_model, tmp_path) -> None:
    from mlops.ml.model import to_frame

    spec, raw = readmission
    model, native = readmission_model
    rows = _features_with_gaps(spec, raw)
    rows.to_parquet(tmp_path / "in.parquet")
    result = score_file(model, tmp_path / "in.parquet", tmp_path / "out.parquet", chunk_rows=700)
    out = pq.read_table(tmp_path / "out.parquet").to_pandas()
    expected = native.predict_proba(to_frame(spec, rows))
    assert result.rows == len(rows) and result.chunks == 5
    assert np.abs(out[[f"p_{c}" for c in spec.class_names]].to_numpy() - expected).max() < 1e-5
    assert (out["prediction"].to_numpy() == expected.argmax(axis=1)).all()
    assert set(out["model_version"].astype(str)) == {"7"}


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("age_band", "[200-210)", "age_band not a known category"),  # the feature mapping cannot make it
        ("age_band", None, "age_band missing"),  # a null in a non-nullable categorical
        ("time_in_hospital", 40.0, "time_in_hospital above 14"),
        ("num_lab_procedures", np.nan, "num_lab_procedures missing"),
    ],
)
def test_bad_row_in_a_dictionary_encoded_chunk_is_rejected(
    readmission, readmission_model, tmp_path, column, value, reason
) -> None:
    """One bad row of 3,000, in one Parquet row group whose dictionary every chunk shares: only that
    row is rejected, with the column and the broken rule named; every other row is scored."""
    spec, raw = readmission
    model, _ = readmission_model
    rows = spec.prepare(raw).reset_index(drop=True)
    rows[column] = rows[column].astype(object if rows[column].dtype == object else "float64")
    rows.loc[1_500, column] = value
    source = tmp_path / "in.parquet"
    rows.to_parquet(source, row_group_size=len(rows))
    result = score_file(model, source, tmp_path / "out.parquet", chunk_rows=1_000)
    assert result.rejected == 1 and result.rejected_by_reason == {reason: 1}
    out = pq.read_table(tmp_path / "out.parquet").to_pandas()
    assert out.loc[out["rejected"].notna(), ["row", "rejected"]].values.tolist() == [[1_500, reason]]
    assert not list(tmp_path.glob("*.parquet.partial"))


def _broken(spec, raw) -> dict[str, pd.DataFrame]:
    base = spec.prepare(raw).head(400).reset_index(drop=True)
    cats = base.copy()
    for name in spec.categorical_features:
        cats[name] = cats[name].astype("category")
    cases = {"clean": base, "clean categorical": cats}

    def case(name, frame, column, value, *, categorical=False):
        frame = frame.copy()
        if categorical:
            frame[column] = frame[column].cat.add_categories([value]) if value is not None else frame[column]
        else:
            text = isinstance(value, str) or frame[column].dtype == object
            frame[column] = frame[column].astype(object if text else "float64")
        frame.loc[7, column] = value
        cases[name] = frame

    case("unknown category", base, "insulin", "Sideways")
    case("unknown category (categorical)", cats, "insulin", "Sideways", categorical=True)
    case("null, non-nullable", base, "insulin", None)
    case("null, non-nullable (categorical)", cats, "insulin", None, categorical=True)
    case("null, nullable", base, "race", None)
    case("null, nullable (categorical)", cats, "race", None, categorical=True)
    case("number in a text column", base, "gender", 1)
    case("null in an open text column", base, "medical_specialty", None)
    case("below the minimum", base, "number_diagnoses", 0.0)
    case("above the maximum", base, "num_medications", 151.0)
    case("infinite", base, "num_medications", np.inf)
    case("NaN", base, "num_procedures", np.nan)
    case("text in a numeric column", base, "num_procedures", "two")
    cases["unused bad category"] = cats.assign(insulin=cats["insulin"].cat.add_categories(["Sideways"]))
    cases["integer numerics"] = base.assign(num_procedures=base["num_procedures"].astype("int64"))
    return cases


def test_fast_schema_proof_never_passes_what_pandera_rejects(readmission) -> None:
    """``conforms`` decides a clean chunk alone; it must agree with pandera on every case here, and
    whatever it does not clear gets pandera's own reasons."""
    import pandera.errors as pe

    from mlops.data.validation import conforms, schema, schema_reasons

    spec, raw = readmission
    for name, frame in _broken(spec, raw).items():
        try:
            schema(spec, with_target=False).validate(frame, lazy=True)
            pandera_ok = True
        except pe.SchemaErrors:
            pandera_ok = False
        assert conforms(spec, frame, with_target=False) == pandera_ok, name
        assert (schema_reasons(spec, frame, with_target=False) == []) == pandera_ok, name


def test_row_gate_rejects_exactly_what_pandera_rejects(readmission) -> None:
    """The per-row gate of both engines (``batch.common.row_reasons``) against pandera, case by case:
    row 7 rejected when pandera fails the frame, no row otherwise."""
    import pandera.errors as pe

    from mlops.batch.common import row_reasons
    from mlops.data.validation import schema

    spec, raw = readmission
    for name, frame in _broken(spec, raw).items():
        try:
            schema(spec, with_target=False).validate(frame, lazy=True)
            pandera_ok = True
        except pe.SchemaErrors:
            pandera_ok = False
        reasons = row_reasons(spec, frame)
        rejected = [] if reasons is None else np.flatnonzero(reasons != "").tolist()
        assert rejected == ([] if pandera_ok else [7]), (name, reasons if reasons is None else reasons[7])


def test_cli_refuses_an_unknown_engine_and_a_missing_java(settings, monkeypatch, tmp_path: Path) -> None:
    """Exit 2 with the fix, before any pipeline starts: an engine name we do not have, and the Spark
    engine on a machine whose configured Java is not there."""
    from typer.testing import CliRunner

    from mlops.cli import app
    from mlops.settings import get_settings

    source = tmp_path / "in.csv"
    source.write_text("sepal_length,sepal_width,petal_length,petal_width\n5.1,3.5,1.4,0.2\n")
    monkeypatch.setenv("COLUMNS", "400")
    result = CliRunner().invoke(app, ["batch-predict", str(source), "--engine", "ray"])
    assert result.exit_code == 2 and "unknown engine 'ray'" in result.output, result.output
    monkeypatch.setenv("MLOPS_SPARK_JAVA_HOME", str(tmp_path / "no-java"))
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["batch-predict", str(source), "--engine", "spark"])
    assert result.exit_code == 2, result.output
    assert "no bin/java" in result.output and "openjdk-17-jre-headless" in result.output, result.output


def test_a_file_no_row_of_which_passes_fails(model, rows, tmp_path: Path) -> None:
    rows["petal_width"] = 20.0
    rows.to_parquet(tmp_path / "in.parquet")
    with pytest.raises(GateFailed) as info:
        score_file(model, tmp_path / "in.parquet", tmp_path / "out.parquet", chunk_rows=1_000)
    assert info.value.reasons == ["all 5000 rows fail the gate: petal_width above 15"]
    assert not (tmp_path / "out.parquet").exists()
