"""What every batch engine shares: the per-row data gate, the file-level missing-rate gate, the
output table (predictions, probabilities, lineage columns, rejection reason) and the result.

Both engines call exactly these functions on each chunk (local) or Arrow batch (Spark), so the same
input gives the same output whatever the engine and however the rows are split. A row is judged on
its own values only (never on its neighbours), which is what makes the outcome independent of
chunk and partition boundaries; the missing-rate gate is judged once, on the counts of the whole
file, and fails the job before anything is committed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from mlops.errors import GateFailed

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    from mlops.spec import ProjectSpec

LINEAGE = ("model_version", "input_hash", "run_id")
REJECTED = "rejected"  # the column: why a row was not scored (null for scored rows)


@dataclass(frozen=True)
class BatchResult:
    output: str
    rows: int  # rows read: scored + rejected
    chunks: int  # chunks (local) or partitions (Spark)
    model_name: str
    model_version: str
    runtime: str
    input_hash: str
    run_id: str
    seconds: float
    predictions_by_label: dict[str, int]
    rejected: int = 0
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    engine: str = "local"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Tally:
    """Counts one chunk or partition contributes; engines add them up (Spark across executors)."""

    rows: int = 0
    missing: dict[str, int] = field(default_factory=dict)
    labels: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, other: Tally) -> Tally:
        self.rows += other.rows
        for mine, theirs in (
            (self.missing, other.missing),
            (self.labels, other.labels),
            (self.reasons, other.reasons),
        ):
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0) + value
        return self

    @property
    def rejected(self) -> int:
        return self.rows - sum(self.labels.values())


def prepared(spec: ProjectSpec, raw: pd.DataFrame, source: str) -> pd.DataFrame:
    """The model's features from ``raw`` (the use case's raw format or its features), checked for
    every feature column: a file without one fails as a whole, no row of it could be scored."""
    try:
        frame = spec.prepare(raw) if spec.prepare is not None else raw
    except KeyError as exc:  # the raw format lacks a column the mapping reads
        raise GateFailed(
            f"{source} fails the data gate", reasons=[f"missing column(s): {exc.args[0]}"]
        ) from None
    check_columns(spec, frame, source)
    return frame


def check_columns(spec: ProjectSpec, frame: pd.DataFrame, source: str) -> None:
    """A file without a feature column fails as a whole: no row of it could be scored."""
    missing = [name for name in spec.feature_names if name not in frame.columns]
    if missing:
        raise GateFailed(
            f"{source} fails the data gate", reasons=[f"missing column(s): {', '.join(missing)}"]
        )


def missing_counts(spec: ProjectSpec, frame: pd.DataFrame) -> dict[str, int]:
    """Missing cells per feature (null, and "" for a categorical: how missing categoricals travel)."""
    counts = {}
    for f in spec.features:
        col = frame[f.name]
        missing = col.isna()
        if f.kind == "categorical":
            missing |= col.eq("")
        counts[f.name] = int(missing.sum())
    return counts


def missing_reasons(spec: ProjectSpec, tally: Tally) -> list[str]:
    """The data gate's missing-rate check, on the whole file's counts (the wording of ``data_reasons``)."""
    limit = spec.data_gate.max_missing_rate
    reasons = []
    for name, count in tally.missing.items():
        rate = count / tally.rows if tally.rows else 0.0
        if rate > limit:
            reasons.append(f"column {name!r} is {rate:.1%} missing (max {limit:.1%})")
    return reasons


def row_reasons(spec: ProjectSpec, frame: pd.DataFrame) -> np.ndarray | None:
    """Per row, why the data gate rejects it ("" for a row that passes); None when all rows pass.

    A clean chunk costs one vectorised proof (``data.validation.conforms``). Otherwise every feature
    is checked per row, vectorised: a value out of range, not a number, a category outside the
    feature's closed set, a missing value where the feature allows none. A row's reason lists its
    failures in feature order, e.g. ``"petal_width below 0; species not a known category"``.
    """
    import numpy as np

    from mlops.data.validation import conforms

    if conforms(spec, frame, with_target=False):
        return None
    n = len(frame)
    failures: list[tuple[str, np.ndarray]] = []
    for f in spec.features:
        failures.extend(_feature_failures(f, frame[f.name], n))
    bad = np.zeros(n, dtype=bool)
    for _, mask in failures:
        bad |= mask
    out = np.full(n, "", dtype=object)
    for i in np.flatnonzero(bad):
        out[i] = "; ".join(reason for reason, mask in failures if mask[i])
    return out


def _feature_failures(f: Any, col: pd.Series, n: int) -> list[tuple[str, np.ndarray]]:
    import numpy as np
    import pandas as pd

    failures = []
    if f.kind == "numeric":
        null = col.isna().to_numpy()
        values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        failures.append((f"{f.name} not a number", ~null & np.isnan(values)))
        if not f.nullable:
            failures.append((f"{f.name} missing", null))
        with np.errstate(invalid="ignore"):
            if f.minimum is not None:
                failures.append((f"{f.name} below {f.minimum:g}", values < f.minimum))
            if f.maximum is not None:
                failures.append((f"{f.name} above {f.maximum:g}", values > f.maximum))
        return failures
    if isinstance(col.dtype, pd.CategoricalDtype):  # judge the few categories, then map by code
        categories = col.cat.categories.to_numpy(dtype=object)
        codes = col.cat.codes.to_numpy()
        empty = np.array([c == "" for c in categories] + [True], dtype=bool)
        known = np.array([isinstance(c, str) and c in f.categories for c in categories] + [True])
        missing = empty[codes]  # code -1 (null) indexes the trailing True
        unknown = ~known[codes] & ~missing
    else:
        values = col.to_numpy(dtype=object)
        missing = pd.isna(values) | (values == "")
        allowed = set(f.categories)
        unknown = np.array([not (isinstance(v, str) and v in allowed) for v in values], dtype=bool)
        unknown &= ~missing
    if f.categories:
        failures.append((f"{f.name} not a known category", unknown))
    if not f.nullable:
        failures.append((f"{f.name} missing", missing))
    return failures


def gate_chunk(spec: ProjectSpec, frame: pd.DataFrame) -> tuple[np.ndarray | None, Tally]:
    """The per-row reasons (None: all pass) and the chunk's missing counts, for prepared features."""
    reasons = row_reasons(spec, frame)
    tally = Tally(rows=len(frame), missing=missing_counts(spec, frame))
    if reasons is not None:
        for text in reasons[reasons != ""]:
            for reason in text.split("; "):
                tally.reasons[reason] = tally.reasons.get(reason, 0) + 1
    return reasons, tally


def output_table(
    spec: ProjectSpec,
    classes: np.ndarray,
    proba: np.ndarray,
    reasons: np.ndarray | None,
    rows: np.ndarray,
    lineage: dict[str, str],
    *,
    dictionary: bool,
) -> tuple[pa.Table, dict[str, int]]:
    """The output rows of one chunk and its counts by label.

    ``classes``/``proba`` hold the scored rows only; rejected rows (``reasons`` != "") get null
    predictions and their reason. ``dictionary`` encodes the label and lineage columns (the local
    engine's Parquet writer; Spark's schema has plain strings and dictionary-encodes on write).
    """
    import numpy as np
    import pyarrow as pa

    n = len(rows)
    rejected = np.zeros(n, dtype=bool) if reasons is None else reasons != ""
    full_classes = np.zeros(n, dtype=np.int32)
    full_classes[~rejected] = classes
    full_proba = np.zeros((n, len(spec.class_names)), dtype=np.float32)
    full_proba[~rejected] = proba
    mask = rejected if rejected.any() else None
    names = pa.array(list(spec.class_names))
    if dictionary:
        label: pa.Array = pa.DictionaryArray.from_arrays(pa.array(full_classes, pa.int32(), mask=mask), names)
    else:
        label = pa.array(names.to_numpy(zero_copy_only=False)[full_classes], pa.string(), mask=mask)
    columns: dict[str, Any] = {
        "row": pa.array(rows.astype(np.int64)),
        "prediction": pa.array(full_classes, pa.int32(), mask=mask),
        "label": label,
    }
    for i, name in enumerate(spec.class_names):
        columns[f"p_{name}"] = pa.array(full_proba[:, i], pa.float32(), mask=mask)
    for key in LINEAGE:
        if dictionary:
            columns[key] = pa.DictionaryArray.from_arrays(
                pa.array(np.zeros(n, dtype=np.int32)), pa.array([lineage[key]])
            )
        else:
            columns[key] = pa.array(np.full(n, lineage[key], dtype=object), pa.string())
    if reasons is None:
        columns[REJECTED] = pa.nulls(n, pa.string())
    else:
        text = reasons.astype(object)
        text[~rejected] = None
        columns[REJECTED] = pa.array(text, pa.string())
    counts = np.bincount(classes, minlength=len(spec.class_names))
    return pa.table(columns), {name: int(c) for name, c in zip(spec.class_names, counts, strict=True)}


def check_missing(spec: ProjectSpec, tally: Tally, source: str) -> None:
    """Fail the job (before the commit) when the whole file misses too many values of a feature, or
    when not one of its rows passed the gate (a wrong file, not a few bad rows)."""
    reasons = missing_reasons(spec, tally)
    if tally.rows and tally.rejected == tally.rows:
        reasons.append(f"all {tally.rows} rows fail the gate: " + ", ".join(sorted(tally.reasons)[:5]))
    if reasons:
        raise GateFailed(f"{source} fails the data gate", reasons=reasons)


def dictionary_encoded(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Text columns as dictionaries (pandas categoricals): the gate and the ONNX feeds then handle a
    column's few distinct strings, as the local engine's Parquet reader does (``read_dictionary``)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = (pa.types.is_string, pa.types.is_large_string)
    columns = [pc.dictionary_encode(c) if any(t(c.type) for t in text) else c for c in batch.columns]
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)
