"""The search step in the real ZenML training pipeline: trials on the training split, nested MLflow
runs, the best parameters trained and recorded on the version; a re-run joins its study."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mlops.data.split import fingerprint
from mlops.ml.search import open_storage
from mlops.projects import get_project
from mlops.registry import Registry
from mlops.runner import run_training
from mlops.tracking import client_for

pytestmark = pytest.mark.pipeline


def test_search_chooses_trains_and_records_the_parameters(settings) -> None:
    import optuna
    from optuna.trial import TrialState
    from zenml.client import Client

    # the CLI in its own process (this test's MLOPS_HOME and ZenML store, from the environment)
    out = subprocess.run(
        [
            str(Path(sys.executable).parent / "mlops"),
            "train",
            "--trials",
            "3",
            "--search-timeout",
            "300",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout[out.stdout.index("{\n") :])  # after the libraries' log lines
    search = result["search"]
    assert (search["complete_trials"], search["trials_here"], search["metric"]) == (3, 3, "f1_macro")
    steps = Client().get_pipeline_run(result["zenml_run_id"]).steps
    assert list(steps)[2:4] == ["split_data", "search_hyperparameters"]

    # every trial read the training split: its rows, not the holdout's or the sealed slice's
    train_set = steps["split_data"].outputs["train_set"][0].load()
    holdout = steps["split_data"].outputs["eval_holdout"][0].load()
    sealed = steps["load_data"].outputs["sealed_slice"][0].load()
    study = optuna.load_study(
        study_name=search["study_name"], storage=open_storage(settings.search_storage, settings.state_dir)
    )
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 3
    assert {t.user_attrs["rows_fingerprint"] for t in trials} == {fingerprint(train_set)}
    assert {t.user_attrs["rows"] for t in trials} == {len(train_set)}
    assert fingerprint(train_set) not in {fingerprint(holdout), fingerprint(sealed)}

    # the model is trained with the study's best parameters, and the version says so
    best = study.best_params
    assert search["best_params"] == best
    estimator = steps["train_model"].outputs["model"][0].load()[-1]
    assert {k: estimator.get_params()[k] for k in best} == best
    tags = Registry(settings, "iris").version(result["model"]["version"]).tags
    assert tags["search.study"] == search["study_name"] and tags["search.trials"] == "3"
    assert json.loads(tags["search.best_params"]) == best
    assert all(tags[f"search.best.{k}"] == str(v) for k, v in best.items())
    assert tags["search.storage"].startswith("journal:")

    # each trial a run nested under the search's run, which holds the best parameters
    client = client_for(settings)
    parent = client.get_run(tags["search.mlflow_run_id"])
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    )
    assert sorted(int(c.data.tags["search.trial"]) for c in children) == sorted(t.number for t in trials)
    params = set(get_project("iris").search.parameters)
    assert all(set(c.data.params) == params and "cv_f1_macro" in c.data.metrics for c in children)
    assert {k: parent.data.params[f"best.{k}"] for k in best} == {k: str(v) for k, v in best.items()}
    assert parent.data.metrics["complete_trials"] == 3

    # the same data and seed again: the run joins the study, adds nothing, trains the same model
    again = run_training(settings.model_copy(update={"search_trials": 3}), "iris")
    assert again["search"]["study_name"] == search["study_name"]
    assert (again["search"]["trials_here"], again["search"]["best_params"]) == (0, best)
    assert again["promotion"]["outcome"] == "kept"  # the same model: a tie keeps the champion
