"""Preprocessing and estimator in one scikit-learn pipeline, built from the use-case spec."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from mlops.spec import ProjectSpec


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


def train_with_threshold(
    spec: ProjectSpec, frame: pd.DataFrame, seed: int, validation_size: float = 0.2
) -> tuple[Pipeline, float | None]:
    """Binary use cases: pick the decision threshold on a validation split carved from the training
    rows (never the evaluation holdout), then refit on all training rows. Others: argmax (None)."""
    if not spec.is_binary or spec.positive_class is None:
        return train(spec, frame, seed), None
    from mlops.data.split import split
    from mlops.ml.threshold import choose_threshold

    fit_rows, validation = split(frame, spec.target, validation_size, seed)
    scores = train(spec, fit_rows, seed).predict_proba(to_frame(spec, validation))[:, spec.positive_class]
    threshold = choose_threshold(
        (validation[spec.target].to_numpy() == spec.positive_class).astype(int), scores
    )
    return train(spec, frame, seed), float(threshold)
