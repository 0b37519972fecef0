"""A use case, described once: features, target, data, model, metric and gates.

Pipelines, the service schema, validation and promotion all read this spec, so a new use case
is a new module here and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from mlops.settings import Settings

FeatureKind = Literal["numeric", "categorical"]
PromotionTarget = Literal["production", "staging"]


@dataclass(frozen=True)
class Feature:
    name: str
    kind: FeatureKind = "numeric"
    minimum: float | None = None
    maximum: float | None = None
    categories: tuple[str, ...] = ()
    nullable: bool = False
    description: str = ""
    integer: bool = False


@dataclass(frozen=True)
class DataGate:
    """Thresholds of the data validation gate."""

    min_rows: int = 50
    max_missing_rate: float = 0.05
    max_duplicate_rate: float = 0.5
    min_class_rate: float = 0.01


@dataclass(frozen=True)
class ModelGate:
    """Absolute minimums per metric, and fairness limits for sensitive attributes."""

    minimums: dict[str, float] = field(default_factory=dict)
    sensitive_features: tuple[str, ...] = ()
    max_group_gap: float = 1.0
    min_group_size: int = 30
    fairness_metric: str = "recall"  # per-group metric whose best-worst gap is gated


@dataclass(frozen=True)
class Invariance:
    """CheckList invariance: shifting ``column`` by each of ``shifts`` (kept inside the feature's range)
    must not change the prediction: the predicted class when ``tolerance`` is None, else every class
    probability within ``tolerance``. ``max_failure_rate`` is the share of (row, shift) cases allowed
    to fail: a tree model's split on a noisy count can sit between two adjacent values."""

    name: str
    column: str
    shifts: tuple[float, ...]
    tolerance: float | None = None
    max_failure_rate: float = 0.0
    rows: int = 200


@dataclass(frozen=True)
class RawInvariance:
    """Invariance on rows in the users' format, before ``ProjectSpec.prepare``: giving every row
    another row's ``columns`` (identifiers) must change no prediction. ``source(rows, seed)`` makes raw
    rows (a generator); the check exists only for specs with a ``prepare``."""

    name: str
    columns: tuple[str, ...]
    source: Callable[[int, int], pd.DataFrame]
    rows: int = 200


@dataclass(frozen=True)
class Directional:
    """CheckList directional expectation: adding each of ``shifts`` to ``column``, all else fixed, never
    lowers (``increasing``) or raises (``decreasing``) the probability of class ``class_index`` by more
    than ``tolerance`` (float noise)."""

    name: str
    column: str
    shifts: tuple[float, ...]
    class_index: int
    direction: Literal["increasing", "decreasing"] = "increasing"
    tolerance: float = 1e-9
    rows: int = 200


@dataclass(frozen=True)
class MinimumFunctionality:
    """CheckList minimum functionality: hand-labelled rows (features -> expected class name) that any
    acceptable model classifies right."""

    name: str
    cases: tuple[tuple[dict[str, Any], str], ...]


@dataclass(frozen=True)
class Behaviour:
    """The behavioural checks a model of the use case must pass (Ribeiro et al., 2020), run by the model
    gate on holdout rows (sampled with ``seed``) through the model's own ``predict_proba``."""

    invariance: tuple[Invariance, ...] = ()
    raw_invariance: tuple[RawInvariance, ...] = ()
    directional: tuple[Directional, ...] = ()
    minimum_functionality: tuple[MinimumFunctionality, ...] = ()
    seed: int = 0


@dataclass(frozen=True)
class Distribution:
    """One hyperparameter's range, declared as data (Optuna reads it in ``mlops.ml.search``):
    ``int`` or ``float`` between ``low`` and ``high`` (``log``: sampled on a log scale), or one of
    ``choices`` (``categorical``)."""

    kind: Literal["int", "float", "categorical"]
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[str | int | float | bool, ...] = ()

    def __post_init__(self) -> None:
        if self.kind == "categorical":
            if not self.choices:
                raise ValueError("a categorical distribution needs choices")
        elif not self.low < self.high or (self.log and self.low <= 0):
            raise ValueError(f"bad range [{self.low}, {self.high}] (log={self.log})")


@dataclass(frozen=True)
class SearchSpace:
    """The hyperparameter search of a use case: parameter -> distribution (the names
    ``build_model`` accepts), the trials a training run makes by default (``settings.search_trials``
    0 means this) and the cross-validation folds each trial fits on the training split. No
    parameters: training builds the model with ``build_model``'s defaults, no search."""

    parameters: dict[str, Distribution] = field(default_factory=dict)
    trials: int = 0
    folds: int = 3


@dataclass(frozen=True)
class ProjectSpec:
    name: str
    description: str
    features: tuple[Feature, ...]
    target: str
    class_names: tuple[str, ...]
    load: Callable[[Settings], pd.DataFrame]
    # ``build_model(spec, seed)`` with the defaults, ``build_model(spec, seed, params)`` with the
    # parameters a search chose (names of ``search.parameters``).
    build_model: Callable[..., Pipeline]
    primary_metric: str
    example: dict[str, Any]
    data_gate: DataGate = DataGate()
    model_gate: ModelGate = ModelGate()
    promotion_target: PromotionTarget = "production"
    positive_class: int | None = None  # binary use cases: index of the positive class
    # Maps rows in the format users hold (e.g. the raw file's columns) to the model's features, for
    # scoring inputs; None when inputs already are the features.
    prepare: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    behaviour: Behaviour = Behaviour()
    search: SearchSpace = SearchSpace()

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric_features(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "numeric"]

    @property
    def categorical_features(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "categorical"]

    @property
    def is_binary(self) -> bool:
        return len(self.class_names) == 2

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)
