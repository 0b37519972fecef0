"""The single-process engine: stream CSV/Parquet in chunks, gate each row, append Parquet.

Memory holds a few chunks at a time, whatever the file size; 10 million rows stream through in
chunks of ``chunk_rows``. Every output row carries the model version, the input file's hash and the
run id, so a batch result is as traceable as a single prediction. The default engine: for inputs
that fit one machine it needs no JVM and starts in no time (``batch.spark`` is the other one).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from mlops.batch.common import BatchResult, Tally, check_missing, gate_chunk, output_table, prepared
from mlops.data.files import file_hash, iter_batches
from mlops.errors import UsageError

if TYPE_CHECKING:
    import numpy as np

    from mlops.runtime import LoadedModel

Progress = Callable[[int], None]
# One DEBUG record per chunk with ``rows_scored`` (so far): the CLI's row bar listens, nothing else
# is coupled to it (off unless a listener enables the logger).
ROWS = logging.getLogger("mlops.batch.rows")
T = TypeVar("T")


def score_file(
    model: LoadedModel,
    source: Path,
    output: Path,
    *,
    chunk_rows: int = 250_000,
    run_id: str = "",
    progress: Progress | None = None,
) -> BatchResult:
    """Score ``source`` into ``output`` (one Parquet file); rows failing the data gate are kept with
    null predictions and their reason, counted by reason in the result.

    Three stages overlap, one chunk apart: reading, gating and shaping chunk k+1 (a reader thread),
    scoring chunk k (here; onnxruntime releases the GIL), writing chunk k-1 (a writer thread).
    The file is written beside the target and renamed into place only once complete and the
    file-level missing-rate gate passed: readers see the old file or the new one, never a part.
    """
    import time

    import pyarrow.parquet as pq

    from mlops.ml.evaluate import predict_classes

    if not source.exists():
        raise UsageError(f"input file {source} does not exist")
    spec = model.spec
    start = time.perf_counter()
    input_hash = file_hash(source)
    lineage = {"model_version": model.version, "input_hash": input_hash, "run_id": run_id}
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    total = Tally()
    chunks = 0
    writer: pq.ParquetWriter | None = None
    reading, writing = ThreadPoolExecutor(max_workers=1), ThreadPoolExecutor(max_workers=1)
    pending: Future[None] | None = None
    try:
        for inputs, reasons, tally in _ahead(_gated_inputs(model, source, chunk_rows), reading):
            proba = model.scorer.proba(inputs) if inputs is not None else _no_rows(spec)
            classes = predict_classes(spec, proba, model.threshold)
            rows = _arange(total.rows, tally.rows)
            table, labels = output_table(spec, classes, proba, reasons, rows, lineage, dictionary=True)
            tally.labels = labels
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
            total.add(tally)
            chunks += 1
            if progress:
                progress(tally.rows)
            ROWS.debug("%d rows scored", total.rows, extra={"rows_scored": total.rows})
        if pending is not None:
            pending.result()
        if writer is None:
            raise UsageError(f"input file {source} has no rows")
        check_missing(spec, total, source.name)
    except BaseException:
        reading.shutdown(wait=True)
        writing.shutdown(wait=True)
        if writer is not None:
            writer.close()
        partial.unlink(missing_ok=True)  # never leave a half-written result behind
        raise
    reading.shutdown(wait=True)
    writing.shutdown(wait=True)
    writer.close()
    partial.replace(output)  # atomic: readers see the old file or the complete new one
    return BatchResult(
        output=str(output),
        rows=total.rows,
        chunks=chunks,
        model_name=model.name,
        model_version=model.version,
        runtime=model.runtime,
        input_hash=input_hash,
        run_id=run_id,
        seconds=time.perf_counter() - start,
        predictions_by_label=total.labels,
        rejected=total.rejected,
        rejected_by_reason=dict(sorted(total.reasons.items())),
        engine="local",
    )


def _gated_inputs(model: LoadedModel, source: Path, chunk_rows: int) -> Iterator[tuple[Any, Any, Tally]]:
    """Per chunk: the model inputs of its accepted rows (``scorer.inputs``: ONNX feeds built by
    ``ml.onnx_feeds`` from the dictionary-encoded chunk, or a frame for the native model; None when
    no row passed), the per-row reasons (None: every row passed) and the chunk's counts."""
    spec = model.spec
    for batch in iter_batches(source, chunk_rows, dictionary=True):
        raw = batch.to_pandas()
        frame = prepared(spec, raw, source.name)
        reasons, tally = gate_chunk(spec, frame)
        if reasons is not None:
            frame = frame[reasons == ""]
        yield (model.scorer.inputs(frame) if len(frame) else None), reasons, tally


def _no_rows(spec: Any) -> np.ndarray:
    import numpy as np

    return np.zeros((0, len(spec.class_names)), dtype=np.float32)


def _arange(first: int, n: int) -> np.ndarray:
    import numpy as np

    return np.arange(first, first + n, dtype=np.int64)


def _ahead(items: Iterator[T], pool: ThreadPoolExecutor) -> Iterator[T]:
    """``items``, the next one made in ``pool`` while the caller works on the current one."""
    done: Any = object()
    future = pool.submit(next, items, done)
    while (item := future.result()) is not done:
        future = pool.submit(next, items, done)
        yield item
