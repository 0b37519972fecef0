"""MLflow-native evidence of a training run (issue 11, item 7), over a real registry: datasets as
MLflow dataset inputs, evaluation plots on the run, metrics on the run (not copied into version tags),
the ONNX file's sha256 on the run and the version."""

from __future__ import annotations

import numpy as np

from mlops import registry as registry_module
from mlops.registry import Registry
from mlops.tracking import client_for, ensure_experiment, log_datasets
from tests.support.training import train_register_promote


def test_metrics_live_on_the_run_and_versions_read_them_there(settings, registered_iris, monkeypatch) -> None:
    registry = Registry(settings, "iris")
    mv = registry.client.get_model_version(registry.name, "1")
    assert not [k for k in mv.tags if k.startswith("metric.")]  # no copies in the version's tags
    run = registry.client.get_run(mv.run_id)
    assert run.data.metrics == registered_iris["metrics"]
    assert registry.version("1").metrics == registered_iris["metrics"]
    # a version registered before metrics left the tags still shows its own
    registry.tag_version("1", {"metric.legacy_only": "0.5"})
    second = train_register_promote(settings, "iris", seed=5)
    monkeypatch.setattr(registry_module, "RUNS_PER_SEARCH", 1)  # one search per run: the chunking too
    first, listed_second = registry.versions()
    assert first.metrics == {**registered_iris["metrics"], "legacy_only": 0.5}
    assert "metric.legacy_only" not in first.tags
    assert listed_second.metrics == second["metrics"] != registered_iris["metrics"]


def test_the_run_holds_its_datasets_plots_and_onnx_digest(settings, registered_iris) -> None:
    registry = Registry(settings, "iris")
    mv = registry.client.get_model_version(registry.name, "1")
    run = registry.client.get_run(mv.run_id)
    by_context = {
        {t.key: t.value for t in d.tags}["mlflow.data.context"]: d for d in run.inputs.dataset_inputs
    }
    assert set(by_context) == {"train", "eval", "sealed"}  # what trained, what evaluated, what judges
    assert f'"num_rows": {mv.tags["sealed_rows"]}' in by_context["sealed"].dataset.profile
    assert len({d.dataset.digest for d in by_context.values()}) == 3
    holdout = by_context["eval"]
    assert holdout.dataset.name == "iris-eval" and holdout.dataset.source_type == "code"
    assert holdout.dataset.digest and "species" in holdout.dataset.schema
    assert f'"num_rows": {run.data.params["holdout_rows"]}' in holdout.dataset.profile
    plots = [a.path for a in registry.client.list_artifacts(mv.run_id, "evaluation")]
    assert plots == ["evaluation/confusion_matrix.png"]  # multiclass: no binary curves
    assert run.data.tags["onnx_sha256"] == mv.tags["onnx_sha256"] == registry.version("1").tags["onnx_sha256"]
    assert len(mv.tags["onnx_sha256"]) == 64  # test_trust proves it is the stored file's


def test_more_datasets_are_logged_with_their_context(settings, iris_spec) -> None:
    client = client_for(settings)
    run_id = client.create_run(ensure_experiment(settings, "evidence", client)).info.run_id
    frame = iris_spec.load(settings)
    sealed = frame.sample(20, random_state=np.random.RandomState(0))
    log_datasets(client, run_id, iris_spec, {"training": frame, "sealed": sealed}, "/data/iris.csv")
    inputs = {
        dict((t.key, t.value) for t in d.tags)["mlflow.data.context"]: d.dataset
        for d in client.get_run(run_id).inputs.dataset_inputs
    }
    assert set(inputs) == {"training", "sealed"}
    assert inputs["training"].digest != inputs["sealed"].digest
    assert '"file": "/data/iris.csv"' in inputs["sealed"].source


def test_a_binary_run_carries_roc_pr_and_calibration_plots(settings) -> None:
    from mlops.configure import configure_libraries

    configure_libraries(settings)
    run_id = train_register_promote(settings, "readmission")["model"]["run_id"]
    plots = {a.path for a in client_for(settings).list_artifacts(run_id, "evaluation")}
    names = ("confusion_matrix", "roc_curve", "pr_curve", "calibration")
    assert plots == {f"evaluation/{name}.png" for name in names}
