"""Everything a training run writes to MLflow tracking: params, metrics, plot, model, ONNX."""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from mlops.settings import Settings
    from mlops.spec import ProjectSpec

# What the model needs at load time; given explicitly so log_model skips a ~5 s inference subprocess.
RUNTIME_PACKAGES = ("scikit-learn", "numpy", "pandas", "scipy", "cloudpickle")


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str
    run_id: str

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def pip_requirements() -> list[str]:
    reqs = []
    for pkg in RUNTIME_PACKAGES:
        try:
            reqs.append(f"{pkg}=={importlib_metadata.version(pkg)}")
        except importlib_metadata.PackageNotFoundError:
            continue
    return reqs


def git_commit(cwd: Path | None = None) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def ensure_experiment(settings: Settings, name: str) -> str:
    import mlflow

    mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
    mlflow.set_registry_uri(settings.mlflow_registry_uri)
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    location = (
        settings.mlflow_artifact_location if settings.mlflow_tracking_uri.startswith("sqlite") else None
    )
    return str(mlflow.create_experiment(name, artifact_location=location))


def log_training_run(
    *,
    settings: Settings,
    spec: ProjectSpec,
    model: Pipeline,
    holdout: pd.DataFrame,
    metrics: dict[str, float],
    confusion_png: bytes,
    onnx_bytes: bytes | None,
    parity: dict[str, Any],
    params: dict[str, Any],
    tags: dict[str, str],
) -> ModelRef:
    """One MLflow run with everything needed to reproduce and serve the model; registers a new version."""
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from mlops.ml.model import to_frame

    experiment_id = ensure_experiment(settings, settings.experiment(spec.name))
    name = settings.registered_model_name(spec.name)
    x = to_frame(spec, holdout)
    signature = infer_signature(x, model.predict_proba(x))
    # Our trust model for cloudpickle is documented below; do not warn on every run.
    logging.getLogger("mlflow.sklearn").setLevel(logging.ERROR)
    with mlflow.start_run(experiment_id=experiment_id) as run, tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tags(tags)
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        mlflow.log_dict(parity, "onnx_parity.json")
        mlflow.log_image(_png(confusion_png), "confusion_matrix.png")
        extra_files = []
        if onnx_bytes is not None:
            onnx_path = Path(tmp) / "model.onnx"
            onnx_path.write_bytes(onnx_bytes)
            extra_files.append(str(onnx_path))
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            input_example=x.head(3),
            pip_requirements=pip_requirements(),
            # Trust model: whoever can write to the registry can run code on its readers, whatever the
            # format (skops with a writer-computed trust list protects nothing more). Guard registry
            # write access; cloudpickle keeps logging ~0.7 s faster than skops here.
            serialization_format="cloudpickle",
            extra_files=extra_files or None,
            registered_model_name=name,
            metadata={"project": spec.name, "class_names": list(spec.class_names)},
        )
        version = str(info.registered_model_version)
    return ModelRef(name=name, version=version, run_id=run.info.run_id)


def register(
    *,
    settings: Settings,
    spec: ProjectSpec,
    model: Pipeline,
    holdout: pd.DataFrame,
    metrics: dict[str, float],
    confusion_matrix: list[list[int]],
    onnx_bytes: bytes | None,
    parity: dict[str, Any],
    dataset_hash: str,
    seed: int,
    extra_tags: dict[str, str] | None = None,
    threshold: float | None = None,
    group_metrics: dict[str, Any] | None = None,
) -> ModelRef:
    """Log the run, register a new version and tag it with everything the registry readers need."""
    from mlops.ml.evaluate import confusion_png
    from mlops.registry import METRIC_TAG, Registry

    tags = {
        "project": spec.name,
        "dataset_hash": dataset_hash,
        "git_commit": git_commit(),
        **(extra_tags or {}),
    }
    estimator = model[-1]
    params: dict[str, Any] = {
        "estimator": type(estimator).__name__,
        "seed": seed,
        "holdout_rows": len(holdout),
    }
    params.update(
        {f"model.{k}": v for k, v in estimator.get_params().items() if isinstance(v, int | float | str)}
    )
    if threshold is not None:
        params["threshold"] = threshold
    ref = log_training_run(
        settings=settings,
        spec=spec,
        model=model,
        holdout=holdout,
        metrics=metrics,
        confusion_png=confusion_png(spec, confusion_matrix),
        onnx_bytes=onnx_bytes,
        parity=parity,
        params=params,
        tags=tags,
    )
    version_tags = {
        **tags,
        **{f"{METRIC_TAG}{k}": str(v) for k, v in metrics.items()},
        "mlflow_run_id": ref.run_id,
        "onnx_parity": "true" if parity.get("ok") and onnx_bytes else "false",
        "onnx_parity_detail": dumps_json(parity),
        "gates_passed": "true",
        "primary_metric": spec.primary_metric,
    }
    if threshold is not None:
        version_tags["threshold"] = str(threshold)
    if group_metrics:
        version_tags["group_metrics"] = dumps_json(group_metrics)
    registry = Registry(settings, spec.name)
    registry.tag_version(ref.version, version_tags)
    return ModelRef(ref.name, ref.version, ref.run_id)


def _png(data: bytes) -> Any:
    import io

    from PIL import Image

    return Image.open(io.BytesIO(data))


def dumps_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
