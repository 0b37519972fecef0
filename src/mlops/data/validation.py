"""The data gate of a use case: its pandera schema, generated from its spec, and the gate's reasons."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd
    import pandera.pandas as pa

    from mlops.spec import Feature, ProjectSpec


def schema(spec: ProjectSpec, *, with_target: bool = True) -> pa.DataFrameSchema:
    import pandera.pandas as pa

    columns: dict[str, pa.Column] = {}
    for f in spec.features:
        if f.kind == "numeric":
            checks = []
            if f.minimum is not None:
                checks.append(pa.Check.ge(f.minimum))
            if f.maximum is not None:
                checks.append(pa.Check.le(f.maximum))
            columns[f.name] = pa.Column(float, checks=checks, nullable=f.nullable, coerce=True)
        else:
            if f.categories:
                # The membership check already implies strings; pandera's per-element str dtype check
                # would cost ~60 % of the batch gate on 14 categorical columns.
                member = pa.Check.isin(list(f.categories))
                columns[f.name] = pa.Column(None, checks=[member], nullable=f.nullable)
            else:
                columns[f.name] = pa.Column(str, nullable=f.nullable, coerce=True)
    if with_target:
        columns[spec.target] = pa.Column(
            int, checks=[pa.Check.isin(list(range(len(spec.class_names))))], nullable=False, coerce=True
        )
    return pa.DataFrameSchema(columns, strict=False)


def schema_reasons(spec: ProjectSpec, frame: pd.DataFrame, *, with_target: bool = True) -> list[str]:
    """Every schema violation as one readable line (empty when the frame conforms).

    A vectorised proof of conformance comes first: on a clean frame it is what batch scoring pays per
    chunk (pandera costs ~5x more). Whatever it cannot prove clean, pandera judges, so the reasons,
    and what is rejected, are pandera's.
    """
    import pandera.errors as pe

    if conforms(spec, frame, with_target=with_target):
        return []
    try:
        schema(spec, with_target=with_target).validate(frame, lazy=True)
    except pe.SchemaErrors as err:
        cases = err.failure_cases
        reasons = []
        for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=False):
            sample = ", ".join(map(str, group["failure_case"].head(3).tolist()))
            reasons.append(f"column {column!r} fails {check} in {len(group)} row(s), e.g. {sample}")
        return reasons
    return []


def conforms(spec: ProjectSpec, frame: pd.DataFrame, *, with_target: bool = True) -> bool:
    """True only when ``frame`` surely passes ``schema``; False means "ask pandera", not "fails".

    Each column is judged on its dtype and its distinct values (a categorical column's used
    categories), never cell by cell in Python. Dtypes whose coercion pandera might judge otherwise
    (text in a numeric column, non-text categories, ...) are left to pandera.
    """
    columns = [*spec.features, None] if with_target else spec.features
    return all(_column_conforms(spec, f, frame) for f in columns)


def _column_conforms(spec: ProjectSpec, f: Feature | None, frame: pd.DataFrame) -> bool:
    import numpy as np
    import pandas as pd

    name = spec.target if f is None else f.name
    if name not in frame.columns:
        return False
    col = frame[name]
    if f is None:  # the target: integer class ids
        values = col.to_numpy()
        return values.dtype.kind in "iu" and bool(((values >= 0) & (values < len(spec.class_names))).all())
    if f.kind == "numeric":
        values = col.to_numpy()
        if values.dtype.kind not in "iuf":
            return False
        present = values[~np.isnan(values)] if values.dtype.kind == "f" else values
        if len(present) < len(values) and not f.nullable:
            return False
        if not len(present):
            return True
        low_ok = f.minimum is None or present.min() >= f.minimum
        high_ok = f.maximum is None or present.max() <= f.maximum
        return bool(low_ok and high_ok)
    if isinstance(col.dtype, pd.CategoricalDtype):
        codes = col.cat.codes.to_numpy()
        used = np.bincount(codes[codes >= 0], minlength=len(col.cat.categories)) > 0
        distinct = col.cat.categories.to_numpy(dtype=object)[used]
        has_null = bool((codes < 0).any())
    elif col.dtype == object:
        distinct = pd.unique(col.to_numpy())
        nulls = pd.isna(distinct)
        distinct, has_null = distinct[~nulls], bool(nulls.any())
    else:
        return False
    if has_null and (not f.nullable or not f.categories):  # a null in an open str column: pandera decides
        return False
    allowed = set(f.categories)
    return all(isinstance(v, str) and (not allowed or v in allowed) for v in distinct)


def data_reasons(
    spec: ProjectSpec, frame: pd.DataFrame, *, with_target: bool = True, batch: bool = False
) -> list[str]:
    """Schema, ranges, missing rates; for training data also size, duplicates and class balance.

    ``batch=True`` is the gate for scoring inputs (a chunk of a file, or rows of a request): the same
    schema and missing-rate checks, without the checks that only make sense for a training set.
    """
    gate = spec.data_gate
    missing_cols = [c for c in spec.feature_names + ([spec.target] if with_target else []) if c not in frame]
    if missing_cols:
        return [f"missing column(s): {', '.join(missing_cols)}"]
    reasons = schema_reasons(spec, frame, with_target=with_target)
    if not batch and len(frame) < gate.min_rows:
        reasons.append(f"{len(frame)} rows, fewer than the minimum {gate.min_rows}")
    for f in spec.features:
        col = frame[f.name]
        missing = col.isna()
        if f.kind == "categorical":  # missing categoricals travel as "" (see ml.model.to_frame)
            missing |= col.eq("")
        rate = float(missing.mean())
        if rate > gate.max_missing_rate:
            reasons.append(f"column {f.name!r} is {rate:.1%} missing (max {gate.max_missing_rate:.1%})")
    if not batch and len(frame):
        dup = float(frame.duplicated().mean())
        if dup > gate.max_duplicate_rate:
            reasons.append(f"{dup:.1%} duplicate rows (max {gate.max_duplicate_rate:.1%})")
    if with_target and len(frame) and spec.target in frame:
        rates = frame[spec.target].value_counts(normalize=True)
        for idx, name in enumerate(spec.class_names):
            rate = float(rates.get(idx, 0.0))
            if rate < gate.min_class_rate:
                reasons.append(f"class {name!r} is {rate:.1%} of rows (min {gate.min_class_rate:.1%})")
    return reasons
