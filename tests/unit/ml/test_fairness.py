"""Per-group metrics and the fairness gate (``mlops.ml.fairness``)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlops.ml.fairness import fairness_reasons, group_metrics


def _biased_case(n: int = 2_000) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Positives of women are found at 0.8 recall, of men at 0.3; age bands equal."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "gender": np.where(np.arange(n) % 2 == 0, "Female", "Male"),
            "race": np.where(np.arange(n) % 50 == 0, "Asian", "Caucasian"),  # Asian: 40 rows
            "age_band": np.where(np.arange(n) % 3 == 0, "60-70", "70-80"),
        }
    )
    frame.loc[frame.index[:5], "race"] = ""  # missing race -> its own (small) group
    y = (rng.random(n) < 0.3).astype(int)
    found = rng.random(n) < np.where(frame["gender"] == "Female", 0.8, 0.3)
    score = np.where((y == 1) & found, 0.8, np.where(y == 1, 0.2, rng.uniform(0, 0.6, n)))
    return frame, y, np.column_stack([1 - score, score])


def test_fairness_gate_names_the_feature_groups_and_values() -> None:
    from mlops.projects.readmission import SPEC

    frame, y, proba = _biased_case()
    groups = group_metrics(SPEC, frame, y, proba, threshold=0.5)
    assert set(groups) == {"gender", "race", "age_band"}
    female, male = groups["gender"]["Female"], groups["gender"]["Male"]
    assert female["n"] == 1_000.0 and female["recall"] == pytest.approx(0.8, abs=0.06)
    assert male["recall"] == pytest.approx(0.3, abs=0.06)
    assert {"base_rate", "positive_rate", "precision", "roc_auc"} <= set(female)
    assert "(missing)" in groups["race"]
    json.dumps(groups, allow_nan=False)  # storable as an MLflow tag

    reasons = fairness_reasons(SPEC, groups)
    assert len(reasons) == 1
    assert "'gender'" in reasons[0] and "'Female'" in reasons[0] and "'Male'" in reasons[0]
    assert f"{SPEC.model_gate.fairness_metric} gap" in reasons[0]


def test_small_groups_are_reported_but_not_judged() -> None:
    from dataclasses import replace

    from mlops.projects.readmission import SPEC
    from mlops.spec import ModelGate

    frame, y, proba = _biased_case()
    # Only the Asian group (40 rows) differs, and it is below min_group_size: no reason.
    proba_race = proba.copy()
    fair = (y == 1) & (frame["race"] != "Asian").to_numpy()
    proba_race[:, 1] = np.where(fair, 0.9, np.where(y == 1, 0.1, 0.05))
    spec = replace(
        SPEC, model_gate=replace(SPEC.model_gate, sensitive_features=("race",), min_group_size=200)
    )
    groups = group_metrics(spec, frame, y, proba_race, threshold=0.5)
    assert groups["race"]["Asian"]["recall"] == 0.0 and groups["race"]["Caucasian"]["recall"] == 1.0
    assert fairness_reasons(spec, groups) == []
    strict = replace(
        spec, model_gate=ModelGate(sensitive_features=("race",), max_group_gap=0.1, min_group_size=10)
    )
    assert any(
        "'Asian'" in r for r in fairness_reasons(strict, group_metrics(strict, frame, y, proba_race, 0.5))
    )


def test_specs_without_sensitive_features_have_no_groups(iris_spec) -> None:
    frame = pd.DataFrame({"x": [1, 2]})
    assert (
        group_metrics(iris_spec, frame, np.array([0, 1]), np.array([[0.9, 0.1, 0], [0.1, 0.9, 0]]), None)
        == {}
    )
    assert fairness_reasons(iris_spec, {}) == []


def test_multiclass_specs_with_sensitive_features() -> None:
    from dataclasses import replace

    from mlops.projects.iris import SPEC as IRIS
    from mlops.spec import ModelGate

    spec = replace(
        IRIS, model_gate=ModelGate(sensitive_features=("site",), max_group_gap=0.2, min_group_size=2)
    )
    frame = pd.DataFrame({"site": ["a", "a", "a", "b", "b", "b"]})
    y = np.array([0, 1, 2, 0, 1, 2])
    proba = np.eye(3)[[0, 1, 2, 0, 0, 0]]
    groups = group_metrics(spec, frame, y, proba, None)
    assert groups["site"]["a"]["recall"] == 1.0 and groups["site"]["b"]["recall"] == pytest.approx(1 / 3)
    assert len(fairness_reasons(spec, groups)) == 1
