"""The reference point of `benchmarks/training.py`: training as the original template does it.

Two ZenML steps (preprocess, train) and `mlflow.sklearn.log_model` with no explicit requirements,
so MLflow infers them in a subprocess. Kept here, outside the package, only to be measured against.
Run: `python benchmarks/naive_pipeline.py` with MLOPS_HOME pointing at an empty folder.
"""

from __future__ import annotations

from typing import Annotated

import mlflow
import mlflow.sklearn
import pandas as pd
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from zenml import pipeline, step


@step(enable_cache=False)
def preprocess() -> tuple[
    Annotated[pd.DataFrame, "x_train"],
    Annotated[pd.DataFrame, "x_test"],
    Annotated[pd.Series, "y_train"],
    Annotated[pd.Series, "y_test"],
]:
    data = load_iris(as_frame=True)
    x_train, x_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.3, random_state=42
    )
    scaler = StandardScaler().fit(x_train)
    cols = x_train.columns
    return (
        pd.DataFrame(scaler.transform(x_train), columns=cols),
        pd.DataFrame(scaler.transform(x_test), columns=cols),
        y_train,
        y_test,
    )


@step(enable_cache=False)
def train(x_train: pd.DataFrame, x_test: pd.DataFrame, y_train: pd.Series, y_test: pd.Series) -> float:
    model = RandomForestClassifier(n_estimators=50, max_depth=6, random_state=42).fit(x_train, y_train)
    accuracy = float(model.score(x_test, y_test))
    mlflow.set_experiment("iris-naive")
    with mlflow.start_run():
        mlflow.log_metric("accuracy", accuracy)
        mlflow.sklearn.log_model(
            model, name="model", registered_model_name="iris-naive", serialization_format="cloudpickle"
        )
    return accuracy


@pipeline(enable_cache=False)
def naive_training() -> None:
    x_train, x_test, y_train, y_test = preprocess()
    train(x_train, x_test, y_train, y_test)


if __name__ == "__main__":
    naive_training()
