"""Evaluation plots drawn from precomputed predictions (``mlops.ml.plots``)."""

from __future__ import annotations

import numpy as np

from mlops.ml.plots import curve_pngs
from mlops.projects import get_project


def test_binary_use_cases_get_roc_pr_and_calibration_from_predictions() -> None:
    spec = get_project("readmission")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2_000)
    p = np.clip(0.3 * y + rng.random(2_000) * 0.7, 0, 1)
    proba = np.column_stack([1 - p, p]) if spec.positive_class == 1 else np.column_stack([p, 1 - p])
    pngs = curve_pngs(spec, y if spec.positive_class == 1 else 1 - y, proba)  # ~0.75 s, imports apart
    assert set(pngs) == {"roc_curve.png", "pr_curve.png", "calibration.png"}
    assert all(png.startswith(b"\x89PNG") and len(png) > 5_000 for png in pngs.values())


def test_multiclass_and_single_class_holdouts_get_no_binary_curves() -> None:
    iris = get_project("iris")
    assert curve_pngs(iris, np.array([0, 1, 2]), np.eye(3)) == {}
    readmission = get_project("readmission")
    assert curve_pngs(readmission, np.zeros(5, dtype=int), np.tile([0.9, 0.1], (5, 1))) == {}
