"""What a ZenML training run recorded, found by the run id a registered version carries in its tags.

Lineage shows it; monitoring loads the dataset artifact as its drift reference; reproduction retrains
from it. ZenML is imported only when a run is looked up.
"""

from __future__ import annotations

from typing import Any


def training_run(run_id: str, dataset_hash: str) -> dict[str, Any]:
    """The ZenML run ``run_id`` and its dataset and holdout artifacts; each link says whether it resolved."""
    if not run_id:
        missing = {"resolved": False, "error": "version was not trained by a ZenML pipeline run"}
        return {"zenml_run": missing, "dataset": {**missing, "hash": dataset_hash}, "config": {}}
    from zenml.client import Client

    try:
        run = Client().get_pipeline_run(run_id)
    except KeyError as exc:
        missing = {"id": run_id, "resolved": False, "error": str(exc)}
        return {"zenml_run": missing, "dataset": {**missing, "hash": dataset_hash}, "config": {}}
    steps = run.steps

    def artifact(step: str, output: str) -> dict[str, Any]:
        try:
            a = steps[step].outputs[output][0]
        except (KeyError, IndexError):
            return {"resolved": False, "error": f"no {output} output in step {step}"}
        return {
            "resolved": True,
            "name": a.name,
            "artifact_version_id": str(a.id),
            "version": a.version,
            "uri": a.uri,
        }

    return {
        "zenml_run": {
            "id": str(run.id),
            "resolved": True,
            "name": run.name,
            "pipeline": run.pipeline.name if run.pipeline else "",
            "status": str(run.status),
            "stack": run.stack.name if run.stack else "",
            "user": run.user.name if run.user else "",
        },
        "dataset": {**artifact("load_data", "raw_dataset"), "hash": dataset_hash},
        "holdout": artifact("split_data", "eval_holdout"),
        "config": dict(run.config.parameters or {}),
    }


def load_artifact(artifact_version_id: str) -> Any:
    """The stored value of one artifact version (a dataset frame, say)."""
    from zenml.client import Client

    return Client().get_artifact_version(artifact_version_id).load()
