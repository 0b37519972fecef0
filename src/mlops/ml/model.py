"""Preprocessing and estimator in one scikit-learn pipeline, built from the use-case spec."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from mlops.projects.base import ProjectSpec


def tabular_pipeline(spec: ProjectSpec, estimator: Any) -> Pipeline:
    """Impute numerics (median), impute + one-hot categoricals, then the estimator.

    Missing categoricals are the empty string in training and serving alike (see ``to_frame``):
    that is what the ONNX converter can represent, and it keeps ``None`` from becoming a category.
    No scaler in front of trees: float32 (ONNX) vs float64 would flip near-split rows.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    transformers: list[tuple[str, Any, list[str]]] = []
    if spec.numeric_features:
        transformers.append(("num", SimpleImputer(strategy="median"), spec.numeric_features))
    if spec.categorical_features:
        categorical = Pipeline(
            [
                ("impute", SimpleImputer(strategy="most_frequent", missing_values="")),
                ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
            ]
        )
        transformers.append(("cat", categorical, spec.categorical_features))
    pre = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("preprocess", pre), ("model", estimator)])


def to_frame(spec: ProjectSpec, rows: pd.DataFrame | list[dict[str, Any]]) -> pd.DataFrame:
    """Rows in the model's column order and dtypes: float64 numerics, str categoricals ('' = missing)."""
    frame = pd.DataFrame(rows) if not isinstance(rows, pd.DataFrame) else rows
    out = pd.DataFrame(index=frame.index)
    for f in spec.features:
        col = frame[f.name] if f.name in frame else pd.Series(np.nan, index=frame.index)
        if f.kind == "numeric":
            out[f.name] = pd.to_numeric(col, errors="coerce").astype("float64")
        else:
            out[f.name] = col.astype(object).where(col.notna(), "").astype(str)
    return out


def train(spec: ProjectSpec, frame: pd.DataFrame, seed: int) -> Pipeline:
    model = spec.build_model(spec, seed)
    model.fit(to_frame(spec, frame), frame[spec.target].to_numpy())
    return model
