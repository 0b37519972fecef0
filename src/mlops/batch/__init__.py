"""Batch scoring, two engines with one output: ``local`` (one process, chunked, the default for an
input that fits one machine) and ``spark`` (``mapInArrow`` over a cluster's partitions).

Both apply ``common``'s per-row data gate and write the same columns: row number, prediction,
label, one probability per class, the lineage columns (model version, input hash, run id) and the
reason a row was rejected. The output appears at its target only once complete.
"""

from __future__ import annotations

from mlops.batch.common import BatchResult
from mlops.batch.local import score_file

__all__ = ["BatchResult", "score_file"]
