"""The Spark engine: the same scoring as ``batch.local``, spread over a cluster's partitions.

Spark reads the Parquet input (CSV is converted on the driver first, by the local engine's reader,
so both engines parse it alike) and hands each partition to ``mapInArrow`` as Arrow batches. Each
executor process keeps one ONNX Runtime session per model digest (module-level cache; Python
workers are reused across tasks), built from bytes broadcast once and verified against the
registered sha256. Rows keep their input row number (Parquet's ``_metadata.row_index``), pass the
same per-row gate and get the same lineage columns as with the local engine: same input, same
output. Per-partition counts come back in an accumulator keyed by partition id, so a retried task
cannot count twice. Spark writes into a directory beside the target, renamed into place only once
the job succeeded: a job killed mid-write leaves nothing at the target.

The master is ``settings.spark_master`` (``local[*]`` by default, ``spark://…`` or ``k8s://…`` in the
stack configs). pyspark is the optional ``spark`` extra; it is imported only here, inside functions.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from mlops.batch.common import (
    LINEAGE,
    REJECTED,
    BatchResult,
    Tally,
    check_missing,
    dictionary_encoded,
    gate_chunk,
    output_table,
    prepared,
)
from mlops.data.files import file_hash, iter_batches
from mlops.errors import UsageError

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.sql import SparkSession

    from mlops.ml.onnx_scorer import OnnxScorer
    from mlops.runtime import LoadedModel
    from mlops.settings import Settings
    from mlops.spec import ProjectSpec

ROW = "__mlops_row"
JAVA_FIX = "apt-get install openjdk-17-jre-headless (or set MLOPS_SPARK_JAVA_HOME to a Java 17 or 21)"
_SCORERS: dict[str, OnnxScorer] = {}  # per executor process: one ONNX Runtime session per model digest


def java_home(settings: Settings) -> str:
    """A Java that Spark 4 runs on (17 or 21): the setting, else ``JAVA_HOME``, else one under /usr/lib/jvm.

    A newer default ``java`` is common (Spark refuses it), hence the search instead of PATH.
    """
    if settings.spark_java_home:
        home = Path(settings.spark_java_home)
        if not (home / "bin" / "java").exists():
            raise UsageError(f"MLOPS_SPARK_JAVA_HOME={home} has no bin/java", hint=JAVA_FIX)
        return str(home)
    candidates = [Path(os.environ["JAVA_HOME"])] if os.environ.get("JAVA_HOME") else []
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        candidates += sorted(p for p in jvm.iterdir() if "-17-" in p.name or "-21-" in p.name)
    for home in candidates:
        if (home / "bin" / "java").exists() and _java_major(home) in {"17", "21"}:
            return str(home)
    raise UsageError("no Java 17 or 21 found for Spark", hint=JAVA_FIX)


def _java_major(home: Path) -> str:
    """The major version a JDK/JRE records in its ``release`` file (or its folder name)."""
    release = home / "release"
    if release.exists():
        for line in release.read_text().splitlines():
            if line.startswith("JAVA_VERSION="):
                return line.split("=", 1)[1].strip('"').split(".")[0]
    return "17" if "-17-" in home.name else "21" if "-21-" in home.name else ""


def session(settings: Settings, *, master: str = "", app: str = "mlops-batch") -> SparkSession:
    """The command's one Spark session (start-up takes seconds: reuse it), quiet on the console.

    Python workers run this interpreter (``PYSPARK_PYTHON``): the system ``python3`` lacks pyarrow
    and the project. On a cluster the executors' image provides both, and the same variable.
    """
    from mlops.configure import spark_environment

    spark_environment(java_home(settings))
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:
        raise UsageError("the Spark engine needs pyspark", hint="uv sync --extra spark (make env)") from exc

    builder = (
        SparkSession.builder.master(master or settings.spark_master)
        .appName(app)
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.parquet.compression.codec", "zstd")
    )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def active_session() -> SparkSession | None:
    """The session this process already runs, if any (without importing pyspark when it has none)."""
    if "pyspark.sql" not in sys.modules:
        return None
    from pyspark.sql import SparkSession

    return SparkSession.getActiveSession()


def score_file(
    model: LoadedModel,
    source: Path,
    output: Path,
    *,
    spark: SparkSession,
    chunk_rows: int = 100_000,
    run_id: str = "",
    ort_threads: int = 1,
    partition_bytes: int = 0,
) -> BatchResult:
    """Score ``source`` into ``output`` (a Parquet dataset: a directory of part files) on ``spark``.

    ``chunk_rows`` bounds an Arrow batch per task; ``ort_threads`` is ONNX Runtime's threads per
    task (1: Spark's tasks already fill the cores); ``partition_bytes`` is the split size (0: about
    four tasks per core, between 1 and 128 MB, so that no core idles through a last lone task).
    Raises ``GateFailed`` (nothing written) when a feature column is absent, the file misses too
    many values or no row passes, as the local engine does.
    """
    import time

    from mlops.ml.trust import check_sha256

    if not source.exists():
        raise UsageError(f"input file {source} does not exist")
    if model.runtime != "onnx" or model.onnx_bytes is None:
        raise UsageError(
            f"the Spark engine scores ONNX models; {model.name} v{model.version} runs on {model.runtime}",
            hint="use --engine local for a model without ONNX parity",
        )
    spec = model.spec
    start = time.perf_counter()
    digest = model.tags.get("onnx_sha256") or hashlib.sha256(model.onnx_bytes).hexdigest()
    check_sha256(model.onnx_bytes, digest, f"the ONNX file of {model.name} v{model.version}")
    input_hash = file_hash(source)
    _probe(spec, source)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")  # beside the target: same filesystem
    converted = output.with_name(output.name + ".input.partial.parquet")
    _remove(partial)  # a killed earlier run's leftovers
    _remove(converted)
    try:
        parquet = _as_parquet(source, converted, chunk_rows)
        sc = spark.sparkContext
        spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(chunk_rows))
        cores = sc.defaultParallelism
        split = partition_bytes or min(128 << 20, max(1 << 20, parquet.stat().st_size // (4 * cores)))
        spark.conf.set("spark.sql.files.maxPartitionBytes", str(split))
        frame = spark.read.parquet(str(parquet))
        frame = frame.select("*", frame["_metadata.row_index"].alias(ROW))
        tallies: Any = sc.accumulator({}, cast(Any, _ByPartition()))  # duck-typed AccumulatorParam
        scorer = PartitionScorer(
            project=spec.name,
            digest=digest,
            onnx=sc.broadcast(model.onnx_bytes),
            threshold=model.threshold,
            lineage={"model_version": model.version, "input_hash": input_hash, "run_id": run_id},
            threads=ort_threads,
            tallies=tallies,
        )
        scored = frame.mapInArrow(scorer, output_schema(spec))
        scored.write.mode("overwrite").option("compression", "zstd").parquet(str(partial))
        total = Tally()
        for value in tallies.value.values():
            total.add(Tally(**value))
        if not total.rows:
            raise UsageError(f"input file {source} has no rows")
        check_missing(spec, total, source.name)
        _commit(partial, output)
    finally:
        _remove(partial)
        _remove(converted)
    return BatchResult(
        output=str(output),
        rows=total.rows,
        chunks=len(tallies.value),
        model_name=model.name,
        model_version=model.version,
        runtime=model.runtime,
        input_hash=input_hash,
        run_id=run_id,
        seconds=time.perf_counter() - start,
        predictions_by_label={name: total.labels.get(name, 0) for name in spec.class_names},
        rejected=total.rejected,
        rejected_by_reason=dict(sorted(total.reasons.items())),
        engine="spark",
    )


class PartitionScorer:
    """The function ``mapInArrow`` runs per partition (a class: pickled by reference, so the session
    cache below stays module-level in every executor process)."""

    def __init__(
        self,
        *,
        project: str,
        digest: str,
        onnx: Any,
        threshold: float | None,
        lineage: dict[str, str],
        threads: int,
        tallies: Any,
    ) -> None:
        self.project, self.digest, self.onnx, self.threshold = project, digest, onnx, threshold
        self.lineage, self.threads, self.tallies = lineage, threads, tallies

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        import numpy as np
        from pyspark import TaskContext

        from mlops.ml.evaluate import predict_classes
        from mlops.projects import get_project

        spec = get_project(self.project)
        scorer = self._scorer(spec)
        tally = Tally()
        for batch in batches:
            rows = batch.column(ROW).to_numpy()
            raw = dictionary_encoded(batch.drop_columns([ROW])).to_pandas()
            frame = spec.prepare(raw) if spec.prepare is not None else raw
            reasons, part = gate_chunk(spec, frame)
            accepted = frame if reasons is None else frame[reasons == ""]
            if len(accepted):
                proba = scorer.proba(scorer.inputs(accepted))
            else:
                proba = np.zeros((0, len(spec.class_names)), dtype=np.float32)
            classes = predict_classes(spec, proba, self.threshold)
            table, part.labels = output_table(
                spec, classes, proba, reasons, rows, self.lineage, dictionary=False
            )
            tally.add(part)
            yield from table.to_batches()
        context = TaskContext.get()
        self.tallies.add({context.partitionId() if context else 0: asdict(tally)})

    def _scorer(self, spec: ProjectSpec) -> OnnxScorer:
        """This process's session for the digest; the broadcast bytes are verified before use."""
        if self.digest not in _SCORERS:
            from mlops.ml.onnx_scorer import OnnxScorer
            from mlops.ml.trust import check_sha256

            data = check_sha256(self.onnx.value, self.digest, f"the broadcast ONNX file {self.digest[:12]}…")
            _SCORERS[self.digest] = OnnxScorer(spec, data, self.threads)
        return _SCORERS[self.digest]


class _ByPartition:
    """Accumulator of partition id -> counts: a re-run task replaces its entry, never adds to it."""

    def zero(self, value: dict[int, Any]) -> dict[int, Any]:
        return {}

    def addInPlace(self, a: dict[int, Any], b: dict[int, Any]) -> dict[int, Any]:  # pyspark's name
        a.update(b)
        return a


def output_schema(spec: ProjectSpec) -> Any:
    """The Spark schema of ``common.output_table(dictionary=False)``."""
    from pyspark.sql.types import FloatType, IntegerType, LongType, StringType, StructField, StructType

    fields = [
        StructField("row", LongType(), False),
        StructField("prediction", IntegerType(), True),
        StructField("label", StringType(), True),
    ]
    fields += [StructField(f"p_{name}", FloatType(), True) for name in spec.class_names]
    fields += [StructField(key, StringType(), True) for key in LINEAGE]
    fields.append(StructField(REJECTED, StringType(), True))
    return StructType(fields)


def _probe(spec: ProjectSpec, source: Path) -> None:
    """Read the first rows on the driver: an unreadable file or a missing column fails here, with
    our message, rather than as a Java stack trace from an executor."""
    for batch in iter_batches(source, 1_000, dictionary=True):
        prepared(spec, batch.to_pandas(), source.name)
        return


def _as_parquet(source: Path, converted: Path, chunk_rows: int) -> Path:
    """``source`` when it is Parquet; a CSV is converted on the driver with the local engine's reader
    (same parsing, hence the same rows; Parquet is the input to prefer at scale)."""
    if source.suffix.lower() in {".parquet", ".pq"}:
        return source
    import pyarrow.parquet as pq

    writer: pq.ParquetWriter | None = None
    for batch in iter_batches(source, chunk_rows):
        writer = writer or pq.ParquetWriter(converted, batch.schema)
        writer.write_batch(batch)
    if writer is None:
        raise UsageError(f"input file {source} has no rows")
    writer.close()
    return converted


def _commit(partial: Path, output: Path) -> None:
    """Rename the finished dataset into place. A previous result (file or directory) is renamed aside
    first and removed after: readers see the old result or the new one, never part of one."""
    if output.exists() or output.is_symlink():
        old = output.with_name(output.name + ".old")
        _remove(old)
        output.rename(old)
        partial.rename(output)
        _remove(old)
    else:
        partial.rename(output)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
