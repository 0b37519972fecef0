"""The Spark engine against the local one, on a real JVM (Java 17) in ``local[2]``: same rows in, same
output out (predictions, probabilities, rejected rows and reasons, lineage columns), whatever the
partitioning; a driver killed mid-write leaves nothing at the target; the 1M-row acceptance run.

Needs Java 17 (``apt-get install openjdk-17-jre-headless``) and the ``spark`` extra: without them
these tests fail, they are never skipped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlops import runtime
from mlops.batch import score_file
from mlops.batch import spark as engine
from mlops.errors import GateFailed, UsageError
from mlops.settings import Settings

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def spark():
    session = engine.session(Settings(), master="local[2]")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A real readmission model on ONNX Runtime, as ``runtime.from_onnx`` builds it from verified bytes."""
    from mlops.data.readmission.cleaning import clean
    from mlops.data.readmission.generator import generate
    from mlops.ml.model import train
    from mlops.ml.onnx_export import export
    from mlops.projects import get_project

    spec = get_project("readmission")
    onnx = export(spec, train(spec, clean(generate(3_000, seed=3)), seed=0))
    path = tmp_path_factory.mktemp("model") / "model.onnx"
    path.write_bytes(onnx)
    loaded = runtime.from_onnx("readmission", onnx, name="readmission-classifier", version="7", run_id="r")
    return loaded, path


def _rows(n: int, seed: int = 5) -> pd.DataFrame:
    """Feature rows with a bad row of every kind at known places, and gaps where the gate allows them."""
    from mlops.data.readmission.generator import generate
    from mlops.projects import get_project

    rows = get_project("readmission").prepare(generate(n, seed=seed)).reset_index(drop=True)
    for name in ("race", "age_band", "insulin"):
        rows[name] = rows[name].astype(object)
    rows["time_in_hospital"] = rows["time_in_hospital"].astype("float64")
    step = max(n // 7, 1)
    rows.loc[1 * step, "time_in_hospital"] = 99.0
    rows.loc[2 * step, "race"] = "Martian"
    rows.loc[3 * step, "age_band"] = None
    rows.loc[4 * step, ["insulin", "time_in_hospital"]] = ["Sideways", float("nan")]
    rows.loc[rows.index % 97 == 3, "race"] = None  # nullable: scored
    rows.loc[rows.index % 89 == 5, "race"] = ""
    return rows


def _read(path: Path) -> pd.DataFrame:
    frame = pq.read_table(path).to_pandas()
    for column in frame.columns:
        if isinstance(frame[column].dtype, pd.CategoricalDtype):
            frame[column] = frame[column].astype(object)
    return frame.sort_values("row").reset_index(drop=True)


def _assert_same(local: Path, spark_out: Path, n: int) -> None:
    a, b = _read(local), _read(spark_out)
    assert list(a.columns) == list(b.columns) and len(a) == len(b) == n
    assert a["row"].tolist() == b["row"].tolist() == list(range(n))
    probabilities = [c for c in a.columns if c.startswith("p_")]
    np.testing.assert_allclose(a[probabilities].to_numpy(), b[probabilities].to_numpy(), atol=1e-5)
    for column in ("prediction", "label", "rejected", "model_version", "input_hash", "run_id"):
        assert a[column].fillna(-1).tolist() == b[column].fillna(-1).tolist(), column
    assert b["model_version"].unique().tolist() == ["7"] and b["run_id"].unique().tolist() == ["run-1"]


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_both_engines_give_the_same_output(spark, model, tmp_path: Path, suffix: str) -> None:
    loaded, _ = model
    rows = _rows(20_000)
    source = tmp_path / f"in{suffix}"
    if suffix == ".csv":
        rows.to_csv(source, index=False)
    else:
        rows.to_parquet(source, row_group_size=2_500)  # row groups: Spark splits the file at them
    spark.conf.set("spark.sql.files.openCostInBytes", "1k")
    try:
        local = score_file(loaded, source, tmp_path / "local.parquet", chunk_rows=3_000, run_id="run-1")
        spread = engine.score_file(
            loaded,
            source,
            tmp_path / "spark.parquet",
            spark=spark,
            chunk_rows=1_000,
            run_id="run-1",
            partition_bytes=64_000,
        )
    finally:
        spark.conf.unset("spark.sql.files.openCostInBytes")
    assert spread.chunks > 1 or suffix == ".csv"  # a real split into partitions for Parquet
    assert spread.engine == "spark" and local.engine == "local"
    for field in ("rows", "rejected", "rejected_by_reason", "predictions_by_label", "input_hash"):
        assert getattr(local, field) == getattr(spread, field), field
    assert local.rejected == 4 and local.rejected_by_reason == {
        "age_band missing": 1,
        "insulin not a known category": 1,
        "race not a known category": 1,
        "time_in_hospital above 14": 1,
        "time_in_hospital missing": 1,
    }
    _assert_same(tmp_path / "local.parquet", tmp_path / "spark.parquet", len(rows))
    assert not list(tmp_path.glob("*.partial*"))


def test_a_rerun_replaces_the_previous_result(spark, model, tmp_path: Path) -> None:
    loaded, _ = model
    _rows(2_000).to_parquet(tmp_path / "in.parquet")
    target = tmp_path / "out.parquet"
    target.write_bytes(b"a previous single-file result")
    first = engine.score_file(loaded, tmp_path / "in.parquet", target, spark=spark)
    second = engine.score_file(loaded, tmp_path / "in.parquet", target, spark=spark)
    assert target.is_dir() and first.rows == second.rows == len(_read(target)) == 2_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet", "out.parquet"]


def test_the_file_level_gate_fails_the_job_and_writes_nothing(spark, model, tmp_path: Path) -> None:
    loaded, _ = model
    rows = _rows(2_000)
    rows.loc[rows.index % 5 == 0, "race"] = None  # 20 % missing: over the 5 % the gate allows
    rows.to_parquet(tmp_path / "in.parquet")
    with pytest.raises(GateFailed) as info:
        engine.score_file(loaded, tmp_path / "in.parquet", tmp_path / "out.parquet", spark=spark)
    assert info.value.reasons == ["column 'race' is 23.8% missing (max 5.0%)"]  # with _rows' own gaps
    with pytest.raises(GateFailed) as local:
        score_file(loaded, tmp_path / "in.parquet", tmp_path / "out.parquet")
    assert local.value.reasons == info.value.reasons
    rows.drop(columns=["race"]).to_parquet(tmp_path / "in.parquet")
    with pytest.raises(GateFailed) as info:
        engine.score_file(loaded, tmp_path / "in.parquet", tmp_path / "out.parquet", spark=spark)
    assert info.value.reasons == ["missing column(s): race"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.parquet"]


def test_refusals_name_the_fix(spark, model, tmp_path: Path) -> None:
    loaded, _ = model
    with pytest.raises(UsageError, match="no bin/java") as info:
        engine.java_home(Settings(spark_java_home=str(tmp_path)))
    assert "openjdk-17-jre-headless" in (info.value.hint or "")
    native = runtime.LoadedModel(loaded.spec, loaded.name, "7", "r", "native", loaded.scorer)
    _rows(100).to_parquet(tmp_path / "in.parquet")
    with pytest.raises(UsageError, match="scores ONNX models"):
        engine.score_file(native, tmp_path / "in.parquet", tmp_path / "out.parquet", spark=spark)
    tampered = runtime.from_onnx(
        "readmission",
        loaded.onnx_bytes or b"",
        name="m",
        version="7",
        run_id="r",
        tags={"onnx_sha256": "0" * 64},
    )
    from mlops.ml.trust import UntrustedModel

    with pytest.raises(UntrustedModel):
        engine.score_file(tampered, tmp_path / "in.parquet", tmp_path / "out.parquet", spark=spark)


KILLED_JOB = r"""
import sys
from pathlib import Path
from mlops import runtime
from mlops.batch import spark as engine
from mlops.settings import Settings
model_path, source, target = map(Path, sys.argv[1:4])
model = runtime.from_onnx("readmission", model_path.read_bytes(), name="m", version="7", run_id="r")
session = engine.session(Settings(), master="local[2]")
print(engine.score_file(model, source, target, spark=session, chunk_rows=5_000).rows, flush=True)
"""


def test_a_driver_killed_mid_write_leaves_nothing_at_the_target(model, tmp_path: Path) -> None:
    """SIGKILL to the driver's process group (its Python and its JVM, as when a pod is killed) while
    part files are being written: the target never appears; a re-run then succeeds."""
    _, model_path = model
    rows = _rows(300_000)
    rows.to_parquet(tmp_path / "in.parquet", row_group_size=10_000)
    target = tmp_path / "out.parquet"
    partial = tmp_path / "out.parquet.partial"
    args = [sys.executable, "-c", KILLED_JOB, str(model_path), str(tmp_path / "in.parquet"), str(target)]
    proc = subprocess.Popen(args, cwd=ROOT, start_new_session=True, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not list(partial.glob("_temporary/**/part-*")) and proc.poll() is None:
            assert time.monotonic() < deadline, "the job never started writing"
            time.sleep(0.05)
        assert proc.poll() is None, "the job ended before it could be killed: make the input larger"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    time.sleep(1)  # let a JVM that outlived its group notice (it must not commit anything)
    assert not target.exists()
    rerun = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert int(rerun.stdout.strip().splitlines()[-1]) == len(rows)
    assert len(_read(target)) == len(rows) and not partial.exists()


def test_acceptance_one_million_readmission_rows_on_both_engines(spark, model, tmp_path: Path) -> None:
    """The issue's acceptance: 1M raw readmission rows (the generator's file, with out-of-range values
    planted in known rows) scored by both engines: the same predictions, probabilities within float
    tolerance, the same rejected rows with the same reasons, lineage columns present."""
    from mlops.data.readmission.generator import write

    loaded, _ = model
    source = tmp_path / "in.parquet"
    write(tmp_path / "raw.parquet", 1_000_000, seed=11)
    raw = pd.read_parquet(tmp_path / "raw.parquet")
    for column in ("time_in_hospital", "num_lab_procedures"):
        raw[column] = raw[column].astype("float64")
    raw.loc[raw.index % 10_007 == 0, "time_in_hospital"] = 99.0
    raw.loc[raw.index % 20_011 == 1, "num_lab_procedures"] = -3.0
    raw.to_parquet(source, row_group_size=100_000)
    del raw
    local = score_file(loaded, source, tmp_path / "local.parquet", run_id="run-1")
    spread = engine.score_file(loaded, source, tmp_path / "spark.parquet", spark=spark, run_id="run-1")
    assert local.rows == spread.rows == 1_000_000 and spread.chunks > 1
    assert local.rejected == spread.rejected == 100 + 50
    assert spread.rejected_by_reason == {"num_lab_procedures below 0": 50, "time_in_hospital above 14": 100}
    assert local.rejected_by_reason == spread.rejected_by_reason
    assert local.predictions_by_label == spread.predictions_by_label
    _assert_same(tmp_path / "local.parquet", tmp_path / "spark.parquet", 1_000_000)


def test_batch_predict_on_spark_through_the_pipeline(
    spark, registered_iris, settings, tmp_path, monkeypatch, capfd
) -> None:
    """``mlops batch-predict --engine spark``: the ZenML batch pipeline resolves the alias, the step
    scores on Spark, the dataset is the run's versioned artifact, the summary names the engine."""
    import json

    from typer.testing import CliRunner

    from mlops.cli import app

    rows = pd.DataFrame(
        {"sepal_length": [5.1, 6.7, 99.0], "sepal_width": [3.5, 3.0, 3.0], "petal_length": [1.4, 5.8, 4.0]}
    ).assign(petal_width=[0.2, 2.2, 1.3])
    # the CLI's pre-check gates the first 1,000 rows as a whole (data.inputs): bad rows come later
    good = rows.head(2).sample(1_000, replace=True, random_state=0)
    pd.concat([good, rows.sample(2_000, replace=True, random_state=0)]).to_parquet(tmp_path / "in.parquet")
    monkeypatch.setenv("COLUMNS", "400")
    target = tmp_path / "out.parquet"
    args = [
        "batch-predict",
        str(tmp_path / "in.parquet"),
        "--output",
        str(target),
        "--engine",
        "spark",
        "--json",
    ]
    import io

    from mlops.cli import render

    document = io.StringIO()  # with --json the document goes to render.json_out (main() points it at stdout)
    monkeypatch.setattr(render, "json_out", document)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(document.getvalue())
    assert summary["engine"] == "spark" and summary["rows"] == 3_000 and summary["rejected"] > 0
    assert summary["rejected_by_reason"] == {"sepal_length above 15": summary["rejected"]}
    out = _read(target)
    assert len(out) == 3_000 and set(out["run_id"]) == {summary["run_id"]} and summary["zenml_run_id"]
