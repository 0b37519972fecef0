"""The one builder of ONNX Runtime inputs ("feeds") from a use case's columns.

The exported graph (``ml.onnx_export.export``) has one input per feature, shaped ``(rows, 1)``:
numerics as float32 (double inputs fail at run time) and categoricals as object arrays of ``str``,
a missing value being ``""`` (what the model's imputer treats as missing, in training and serving
alike: a ``None`` would silently become the category "None").

Every caller goes through ``_feeds``, the one column loop that applies that rule; the entry points
differ only in how they read one column's values:

- ``from_rows``: validated request rows (dicts), the service's hot path: no pandas, ~20x cheaper
  than building a frame for one row;
- ``from_frame``: a pandas frame, plain (as ``ml.model.to_frame`` shapes it, or raw feature columns)
  or dictionary-encoded (pandas categoricals, as batch scoring reads Arrow dictionaries): a
  categorical column's text is its categories taken by code, so no Python string is made per cell.

All of them give identical feeds for the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from mlops.spec import ProjectSpec

Feeds = dict[str, np.ndarray]
Column = Callable[[str], Any]  # feature name -> that column's values (a sequence or an array)


def _feeds(spec: ProjectSpec, numeric: Column, text: Column) -> Feeds:
    """The dtype rule, once: float32 numerics (NaN = missing), ``str`` categoricals ("" = missing)."""
    feeds: Feeds = {}
    for f in spec.features:
        if f.kind == "numeric":
            feeds[f.name] = np.asarray(numeric(f.name), dtype=np.float32).reshape(-1, 1)
        else:
            feeds[f.name] = np.asarray(text(f.name), dtype=object).reshape(-1, 1)
    return feeds


def _text_value(value: Any) -> str:
    """One categorical cell as the model's text: ``None``/NaN -> "", other non-strings -> ``str``."""
    try:
        if value is None or value != value:  # value != value: NaN (float, numpy or NaT)
            return ""
    except TypeError:  # pandas.NA has no truth value: a missing value too
        return ""
    return str(value)


def from_rows(spec: ProjectSpec, rows: Sequence[dict[str, Any]]) -> Feeds:
    """Feeds for rows given as dicts (feature name -> value); an absent key is a missing value."""

    def numeric(name: str) -> list[Any]:
        return [np.nan if (v := r.get(name)) is None else v for r in rows]

    def text(name: str) -> list[str]:
        return [v if type(v := r.get(name)) is str else _text_value(v) for r in rows]

    return _feeds(spec, numeric, text)


def from_frame(spec: ProjectSpec, frame: pd.DataFrame) -> Feeds:
    """Feeds for a frame holding the features (plain or dictionary-encoded columns, any order).

    Numerics that are not numbers become NaN (as ``ml.model.to_frame`` does); a categorical column's
    text is its categories by code (a null code -1 takes the ``""`` appended last).
    """
    import pandas as pd

    def numeric(name: str) -> np.ndarray:
        col = frame[name]
        if not (isinstance(col.dtype, np.dtype) and col.dtype.kind == "f"):
            col = pd.to_numeric(col, errors="coerce").astype("float64")
        return np.asarray(col.to_numpy())

    def text(name: str) -> np.ndarray:
        col = frame[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            categories = np.append(col.cat.categories.astype(str).to_numpy(dtype=object), "")
            return np.asarray(categories[col.cat.codes.to_numpy()])
        return np.asarray(col.astype(object).where(col.notna(), "").astype(str).to_numpy(dtype=object))

    return _feeds(spec, numeric, text)
