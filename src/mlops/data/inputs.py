"""Fail fast on an input file, before a pipeline starts.

A file the batch or drift pipeline could not read would otherwise fail inside a ZenML step, minutes
later, under the step runner's traceback. Here it is one line naming the problem and an exit code:
2 for a file that is not a readable CSV/Parquet table, 3 when its first rows fail the data gate.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlops.errors import GateFailed, UsageError

if TYPE_CHECKING:
    from mlops.spec import ProjectSpec

SAMPLE_ROWS = 1_000


def check_input_file(spec: ProjectSpec, path: Path, *, gate: bool = True) -> None:
    """``path`` is a non-empty CSV/Parquet table with the project's columns, whose first rows pass the
    batch data gate (``gate``; drift wants drifted rows, but needs the columns to compare)."""
    from mlops.data.files import iter_chunks
    from mlops.data.validation import data_reasons

    if not path.exists():
        raise UsageError(f"input file {path} does not exist")
    if not path.is_file():
        raise UsageError(f"input {path} is not a file", hint="pass a .csv or .parquet file")
    if path.stat().st_size == 0:
        raise UsageError(f"input file {path} is empty")
    try:
        first = next(iter_chunks(path, SAMPLE_ROWS), None)
    except UsageError:
        raise
    except Exception as exc:  # pyarrow's parse errors: the file is not the table its name says
        raise UsageError(
            f"cannot read {path.name} as {path.suffix.lstrip('.').upper() or 'a table'}: {exc}",
            hint="pass a CSV with a header row or a Parquet file",
        ) from None
    if first is None or first.empty:
        raise UsageError(f"input file {path} has no rows")
    first = first.head(SAMPLE_ROWS)
    try:
        frame = spec.prepare(first) if spec.prepare is not None else first
    except KeyError as exc:  # a raw-format column the features are computed from
        frame, missing = first, [str(exc.args[0])]
    else:
        missing = [c for c in spec.feature_names if c not in frame]
    if missing:
        raise GateFailed(
            f"{path.name} lacks the columns of {spec.name!r}",
            reasons=[f"missing column(s): {', '.join(missing)}"],
            hint=f"expected columns: {', '.join(spec.feature_names)}",
        )
    reasons = data_reasons(spec, frame, with_target=False, batch=True) if gate else []
    if reasons:
        raise GateFailed(f"the first {len(frame)} rows of {path.name} fail the data gate", reasons=reasons)
