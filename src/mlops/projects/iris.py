"""The quickstart: Fisher's iris (shipped inside scikit-learn, no download)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops.spec import (
    Behaviour,
    DataGate,
    Distribution,
    Feature,
    MinimumFunctionality,
    ModelGate,
    ProjectSpec,
    SearchSpace,
)

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from mlops.settings import Settings

FEATURES = (
    Feature("sepal_length", minimum=0.0, maximum=15.0, description="Sepal length in cm"),
    Feature("sepal_width", minimum=0.0, maximum=15.0, description="Sepal width in cm"),
    Feature("petal_length", minimum=0.0, maximum=15.0, description="Petal length in cm"),
    Feature("petal_width", minimum=0.0, maximum=15.0, description="Petal width in cm"),
)
TARGET = "species"


def load(settings: Settings) -> pd.DataFrame:
    """The 150 iris rows; a CSV with the same columns replaces them when ``MLOPS_DATA_PATH`` is set."""
    import pandas as pd

    if settings.data_path is not None:
        return pd.read_csv(settings.data_path)
    from sklearn.datasets import load_iris

    raw = load_iris(as_frame=True).frame
    raw.columns = [f.name for f in FEATURES] + [TARGET]
    return raw


DEFAULTS: dict[str, Any] = {"n_estimators": 50, "max_depth": 6, "min_samples_leaf": 1}

# A small space and few trials: 150 rows fit in milliseconds, and `make demo` stays about as fast.
# Tree counts that keep ONNX's float32 average of pure leaves at exactly 1.0 (53 trees give
# 1.0000006, which the serving smoke test refuses as "not a probability").
SEARCH = SearchSpace(
    parameters={
        "n_estimators": Distribution("categorical", choices=(32, 50, 64)),
        "max_depth": Distribution("int", 2, 8),
        "min_samples_leaf": Distribution("int", 1, 5),
    },
    trials=4,
    folds=3,
)


def build_model(spec: ProjectSpec, seed: int, params: dict[str, Any] | None = None) -> Pipeline:
    """A RandomForest with ``DEFAULTS``, overridden by ``params`` (a search's choice)."""
    from sklearn.ensemble import RandomForestClassifier

    from mlops.ml.model import tabular_pipeline

    chosen = {**DEFAULTS, **(params or {})}
    return tabular_pipeline(spec, RandomForestClassifier(**chosen, n_jobs=1, random_state=seed))


# Minimum functionality: textbook measurements of each species (cm), far from the class borders, that
# any model worth serving classifies right (not rows of the dataset: a model could memorise those).
TYPICAL_FLOWERS = MinimumFunctionality(
    "typical flowers",
    cases=(
        ({"sepal_length": 5.0, "sepal_width": 3.4, "petal_length": 1.5, "petal_width": 0.2}, "setosa"),
        ({"sepal_length": 4.7, "sepal_width": 3.2, "petal_length": 1.3, "petal_width": 0.2}, "setosa"),
        ({"sepal_length": 5.9, "sepal_width": 2.8, "petal_length": 4.3, "petal_width": 1.3}, "versicolor"),
        ({"sepal_length": 6.1, "sepal_width": 2.9, "petal_length": 4.5, "petal_width": 1.4}, "versicolor"),
        ({"sepal_length": 6.7, "sepal_width": 3.0, "petal_length": 5.8, "petal_width": 2.2}, "virginica"),
        ({"sepal_length": 7.2, "sepal_width": 3.2, "petal_length": 6.0, "petal_width": 2.0}, "virginica"),
    ),
)

SPEC = ProjectSpec(
    name="iris",
    description="Classify iris flowers into setosa, versicolor and virginica from four measurements.",
    features=FEATURES,
    target=TARGET,
    class_names=("setosa", "versicolor", "virginica"),
    load=load,
    build_model=build_model,
    primary_metric="f1_macro",
    example={"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2},
    data_gate=DataGate(min_rows=30, max_missing_rate=0.0, max_duplicate_rate=0.1, min_class_rate=0.1),
    model_gate=ModelGate(minimums={"f1_macro": 0.8, "accuracy": 0.8}),
    promotion_target="production",
    behaviour=Behaviour(minimum_functionality=(TYPICAL_FLOWERS,)),
    search=SEARCH,
)
