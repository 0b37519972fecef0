"""Batch scoring on a real registered model: chunks, gate, atomic output, lineage columns."""

from __future__ import annotations

from pathlib import Path

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

    expected = native.predict_proba(to_frame(model.spec, rows)).argmax(axis=1)
    assert (out["prediction"].to_numpy() == expected).all()
    assert sum(result.predictions_by_label.values()) == 5_000


def test_bad_chunk_stops_the_run_and_leaves_no_output(model, rows, tmp_path: Path) -> None:
    rows.loc[3_500, "petal_width"] = -1.0
    source = tmp_path / "in.parquet"
    rows.to_parquet(source)
    target = tmp_path / "out.parquet"
    target.write_bytes(b"previous result")
    with pytest.raises(GateFailed, match="rows 3000-3999") as info:
        score_file(model, source, target, chunk_rows=1_000)
    assert "petal_width" in info.value.reasons[0]
    assert target.read_bytes() == b"previous result"  # untouched
    assert not list(tmp_path.glob("*.partial"))


def test_unsupported_and_missing_inputs(model, tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(UsageError, match="unsupported"):
        score_file(model, tmp_path / "x.json", tmp_path / "o.parquet")
    with pytest.raises(UsageError, match="does not exist"):
        score_file(model, tmp_path / "nope.csv", tmp_path / "o.parquet")
