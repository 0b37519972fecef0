"""Lineage: prediction → model version → MLflow run → ZenML run → dataset and holdout → git commit + config.

Every link says whether it resolved, so a broken chain is visible instead of silently shorter.
"""

from __future__ import annotations

import json
from typing import Any

from mlops.artifacts import load_artifact, training_run
from mlops.errors import NotFound
from mlops.registry import Registry
from mlops.settings import Settings


def for_request(settings: Settings, request_id: str) -> dict[str, Any]:
    from mlops.stores.predictions import get_prediction

    prediction = get_prediction(settings.prediction_log_db_url, request_id)
    if prediction is None:
        raise NotFound(
            f"no prediction with request id {request_id!r}", hint="request ids are in X-Request-ID"
        )
    chain = for_version(settings, str(prediction["project"]), str(prediction["model_version"]))
    return {"prediction": prediction, **chain}


def for_version(settings: Settings, project: str, version: str) -> dict[str, Any]:
    reg = Registry(settings, project)
    info = reg.version(version)
    tags = info.tags
    chain: dict[str, Any] = {
        "model_version": {
            "name": info.name,
            "version": info.version,
            "aliases": info.aliases,
            "uri": f"models:/{info.name}/{info.version}",
            "created_at": info.created_at,
            "metrics": info.metrics,
        },
        "mlflow_run": _mlflow_run(reg, info.run_id),
        "code": {"git_commit": tags.get("git_commit", "unknown")},
    }
    chain.update(training_run(tags.get("zenml_run_id", ""), tags.get("dataset_hash", "")))
    return chain


def _mlflow_run(reg: Registry, run_id: str) -> dict[str, Any]:
    from mlflow.exceptions import MlflowException

    try:
        run = reg.client.get_run(run_id)
    except MlflowException as exc:
        return {"id": run_id, "resolved": False, "error": str(exc)}
    return {
        "id": run_id,
        "resolved": True,
        "experiment_id": run.info.experiment_id,
        "status": run.info.status,
        "artifact_uri": run.info.artifact_uri,
        "params": dict(run.data.params),
    }


def reproduce(settings: Settings, project: str, version: str) -> dict[str, Any]:
    """Retrain from the recorded dataset artifact and config (no registration); compare the metrics."""
    from mlops.data.split import fingerprint, split
    from mlops.ml import evaluate as ev
    from mlops.ml import model as ml
    from mlops.ml.search import with_params
    from mlops.projects import get_project

    chain = for_version(settings, project, version)
    if not chain["dataset"].get("resolved"):
        raise NotFound(
            f"version {version} has no recorded dataset artifact", reasons=[chain["dataset"]["error"]]
        )
    registry = Registry(settings, project)
    searched = registry.version(version).tags.get("search.best_params") or "{}"
    spec = with_params(get_project(project), json.loads(searched))  # the parameters its search chose
    frame = load_artifact(chain["dataset"]["artifact_version_id"])
    config = chain["config"]
    seed, test_size = (
        int(config.get("seed", settings.seed)),
        float(config.get("test_size", settings.test_size)),
    )
    train, holdout = split(frame, spec.target, test_size, seed)
    model = ml.train(spec, train, seed)
    x, y = ev.holdout_xy(spec, holdout)
    threshold = registry.threshold(version)
    reproduced = ev.metrics(spec, y, model.predict_proba(x), threshold)
    recorded = chain["model_version"]["metrics"]
    diffs = {k: abs(reproduced[k] - recorded[k]) for k in recorded if k in reproduced}
    return {
        "version": version,
        "dataset_hash_matches": fingerprint(frame) == chain["dataset"]["hash"],
        "config": {"seed": seed, "test_size": test_size},
        "recorded": recorded,
        "reproduced": reproduced,
        "max_abs_diff": max(diffs.values(), default=0.0),
        "match": bool(diffs) and max(diffs.values()) <= 1e-9,
    }
