"""Each use case's search space (``ProjectSpec.search``) names parameters its ``build_model`` takes,
and every corner of the space builds the estimator with exactly those values."""

from __future__ import annotations

import pytest

from mlops.ml.search import with_params
from mlops.projects import get_project


def _corners(spec) -> list[dict]:
    low, high = {}, {}
    for name, dist in spec.search.parameters.items():
        if dist.kind == "categorical":
            low[name], high[name] = dist.choices[0], dist.choices[-1]
        else:
            cast = int if dist.kind == "int" else float
            low[name], high[name] = cast(dist.low), cast(dist.high)
    return [low, high]


@pytest.mark.parametrize("project", ["iris", "readmission"])
def test_every_corner_of_the_space_builds_that_model(project: str) -> None:
    spec = get_project(project)
    assert spec.search.parameters and spec.search.trials >= 1 and spec.search.folds >= 2
    for params in _corners(spec):
        built = with_params(spec, params)
        estimator = built.build_model(built, 7)[-1]
        assert {k: estimator.get_params()[k] for k in params} == params
        assert estimator.get_params()["random_state"] == 7


def test_the_readmission_model_keeps_its_constraints_whatever_the_search_picks() -> None:
    spec = get_project("readmission")
    for params in _corners(spec):
        built = with_params(spec, params)
        estimator = built.build_model(built, 0)[-1]
        assert estimator.class_weight == "balanced" and estimator.monotonic_cst == {"number_inpatient": 1}
