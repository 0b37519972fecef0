"""Everything a training run writes to MLflow tracking: params, metrics, datasets, plots, model, ONNX.

Only through ``MlflowClient`` objects built from ``Settings`` (never MLflow's fluent API, which reads
the process-wide tracking URI and active run).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import warnings
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from sklearn.pipeline import Pipeline

    from mlops.settings import Settings
    from mlops.spec import ProjectSpec

# What the model needs at load time; given explicitly so log_model skips a ~5 s inference subprocess.
RUNTIME_PACKAGES = ("scikit-learn", "numpy", "pandas", "scipy", "skops")


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


def git_commit(cwd: Path | None = None, fallback: str = "") -> str:
    """The commit the code runs from: git's answer in a checkout, else ``fallback`` (the setting
    ``git_commit``, ``MLOPS_GIT_COMMIT``: a container carries no ``.git``, its image is built with
    ``--build-arg GIT_COMMIT=...``), else "unknown"."""
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
        return fallback.strip() or "unknown"


def client_for(settings: Settings) -> MlflowClient:
    """An MLflow client bound to these settings' URIs (never the process-wide ones)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_registry_uri)


def ensure_experiment(settings: Settings, name: str, client: MlflowClient | None = None) -> str:
    client = client or client_for(settings)
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return str(experiment.experiment_id)
    # A database URI (SQLite, or Postgres without a tracking server): artifacts in the state folder,
    # not in ./mlruns of whatever the working directory is; a tracking server decides its own.
    uri = settings.mlflow_tracking_uri
    location = None if uri.startswith(("http://", "https://")) else settings.mlflow_artifact_location
    return str(client.create_experiment(name, artifact_location=location))


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
    datasets: dict[str, pd.DataFrame] | None = None,
    data_source: str = "",
) -> ModelRef:
    """One MLflow run with everything needed to reproduce and serve the model; registers a new version.

    Every call goes through a client bound to ``settings``: the run, its params/metrics/artifacts,
    the logged model (saved locally by the sklearn flavor, then uploaded) and the model version.
    This is what ``mlflow.sklearn.log_model(registered_model_name=...)`` does, minus its reliance on
    the process-wide tracking URI and the active-run stack.

    ``datasets`` (context -> rows: ``train``, ``validation``, ``sealed``…) are logged as MLflow
    datasets beside the ``holdout`` (context ``eval``); the ROC/PR/calibration plots are drawn
    from the holdout probabilities computed here once.
    """
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus, Metric, Param, RunStatus
    from mlflow.models import Model, infer_signature
    from mlflow.tracking.context.registry import resolve_tags

    from mlops.ml.model import to_frame
    from mlops.ml.plots import curve_pngs

    client = client_for(settings)
    experiment_id = ensure_experiment(settings, settings.experiment(spec.name), client)
    name = settings.registered_model_name(spec.name)
    x = to_frame(spec, holdout)
    proba = model.predict_proba(x)
    signature = infer_signature(x, proba)
    trusted = skops_types(model)
    run_id = client.create_run(experiment_id, tags=resolve_tags(tags)).info.run_id
    try:
        with tempfile.TemporaryDirectory() as tmp:
            client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
            client.log_dict(run_id, parity, "onnx_parity.json")
            plots = {"confusion_matrix.png": confusion_png}
            plots.update(curve_pngs(spec, holdout[spec.target].to_numpy(), proba))
            for file_name, png_bytes in plots.items():
                png = Path(tmp) / file_name
                png.write_bytes(png_bytes)
                client.log_artifact(run_id, str(png), "evaluation")
            log_datasets(client, run_id, spec, {**(datasets or {}), "eval": holdout}, data_source)
            logged = client.create_logged_model(
                experiment_id,
                name="model",
                source_run_id=run_id,
                params={k: str(v) for k, v in params.items()},
                tags=resolve_tags(),
            )
            client.log_outputs(run_id, [LoggedModelOutput(logged.model_id, step=0)])
            now = int(time.time() * 1000)
            client.log_batch(
                run_id, metrics=[Metric(k, v, now, 0, model_id=logged.model_id) for k, v in metrics.items()]
            )
            extra_files = []
            if onnx_bytes is not None:
                onnx_path = Path(tmp) / "model.onnx"
                onnx_path.write_bytes(onnx_bytes)
                extra_files.append(str(onnx_path))
            local = Path(tmp) / "model"
            mlflow_model = Model(
                artifact_path=logged.artifact_location,
                model_uuid=logged.model_id,
                run_id=run_id,
                metadata={"project": spec.name, "class_names": list(spec.class_names)},
                model_id=logged.model_id,
            )
            _save_sklearn(model, local, mlflow_model, signature, x.head(3), extra_files, trusted)
            client.log_model_artifacts(logged.model_id, str(local))
            client.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
        version = _create_version(client, name, logged.model_id, run_id)
    except BaseException:
        client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))
        raise
    client.set_terminated(run_id)
    return ModelRef(name=name, version=version, run_id=run_id)


def skops_types(model: Pipeline) -> list[str]:
    """The types MLflow must be told to trust so it can save ``model`` with skops (it loads the
    file back once to check). Refused here, at training, when any is outside our allow-list: the
    readers (``ml.trust``) would refuse the version, whatever its MLmodel file says."""
    import skops.io

    from mlops.ml.trust import TRUSTED_TYPES, UntrustedModel

    found = sorted(skops.io.get_untrusted_types(data=skops.io.dumps(model)))
    outside = sorted(set(found) - set(TRUSTED_TYPES))
    if outside:
        raise UntrustedModel(
            "the trained model holds types outside mlops.ml.trust.TRUSTED_TYPES; not registered",
            reasons=outside,
            hint="review the types and add them to TRUSTED_TYPES if they are safe to load",
        )
    return found


def log_datasets(
    client: MlflowClient, run_id: str, spec: ProjectSpec, frames: dict[str, pd.DataFrame], data_source: str
) -> None:
    """Each frame as an MLflow dataset input of the run (digest, schema, row count), its context
    (``train``, ``eval``…) as the input's ``mlflow.data.context`` tag. The source names where the
    rows come from: the project's loader, and the file when one was given."""
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.data.pandas_dataset import from_pandas
    from mlflow.entities import DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    inputs = []
    with warnings.catch_warnings():  # "integer column(s)": the data gate owns missing values, not MLflow
        warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
        for context, frame in frames.items():
            source = CodeDatasetSource({"loader": f"mlops.projects.{spec.name}", "file": data_source})
            targets = spec.target if spec.target in frame.columns else None
            dataset = from_pandas(frame, source=source, name=f"{spec.name}-{context}", targets=targets)
            entity = dataset._to_mlflow_entity()  # what mlflow.log_input does (mlflow pinned ==3.17.2)
            inputs.append(DatasetInput(entity, [InputTag(MLFLOW_DATASET_CONTEXT, context)]))
    client.log_inputs(run_id, datasets=inputs)


def _save_sklearn(
    model: Pipeline,
    path: Path,
    mlflow_model: Any,
    signature: Any,
    example: Any,
    extra_files: list[str],
    trusted: list[str],
) -> None:
    import mlflow.sklearn

    mlflow.sklearn.save_model(
        model,
        str(path),
        mlflow_model=mlflow_model,
        signature=signature,
        input_example=example,
        pip_requirements=pip_requirements(),
        # skops, never pickle: readers load it with OUR allow-list (mlops.ml.trust), not with the
        # list written here into the MLmodel file, which only lets MLflow's save-time check pass.
        serialization_format="skops",
        skops_trusted_types=trusted,
        extra_files=extra_files or None,
        metadata=mlflow_model.metadata,
    )


def _create_version(client: MlflowClient, name: str, model_id: str, run_id: str) -> str:
    """A new version of ``name`` (created on first use) whose source is the logged model."""
    from mlflow.exceptions import MlflowException

    from mlops.configure import scoped_tracking_uri

    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code not in {"RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"}:
            raise
    # The registry's SQL store looks the logged model up through the global URI (see the scope).
    with scoped_tracking_uri(client.tracking_uri):
        mv = client.create_model_version(name, source=f"models:/{model_id}", run_id=run_id, model_id=model_id)
    return str(mv.version)


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
    datasets: dict[str, pd.DataFrame] | None = None,
    data_source: str = "",
) -> ModelRef:
    """Log the run, register a new version and tag it with everything the registry readers need.

    Metrics stay on the run and its logged model (``Registry.version`` reads them there), not
    copied into version tags. The ONNX file's sha256 goes on the run and the version: every
    reader verifies it before scoring (``runtime.load``).
    """
    from mlops.ml.evaluate import confusion_png
    from mlops.ml.trust import sha256
    from mlops.registry import Registry

    tags = {
        "project": spec.name,
        "dataset_hash": dataset_hash,
        "git_commit": git_commit(fallback=settings.git_commit),
        **(extra_tags or {}),
    }
    if onnx_bytes is not None:
        tags["onnx_sha256"] = sha256(onnx_bytes)
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
        datasets=datasets,
        data_source=data_source,
    )
    version_tags = {
        **tags,
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


def dumps_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


# ----- hyperparameter search: a parent run per search, one nested run per trial -----
def start_search_run(settings: Settings, spec: ProjectSpec, study: str, tags: dict[str, str]) -> str:
    """The parent MLflow run of one search (in the project's experiment); its trials nest under it."""
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

    client = client_for(settings)
    experiment_id = ensure_experiment(settings, settings.experiment(spec.name), client)
    run_tags = {MLFLOW_RUN_NAME: f"search {study}", "project": spec.name, "search.study": study, **tags}
    return str(client.create_run(experiment_id, tags=run_tags).info.run_id)


def trial_logger(settings: Settings, spec: ProjectSpec, parent_run_id: str) -> Any:
    """An Optuna callback logging each finished trial as a run nested under ``parent_run_id``:
    its parameters, the mean and per-fold cross-validated metric, the worker that ran it. Runs in
    whichever process ran the trial, so every worker's trials land under the same parent."""
    from mlflow.entities import Metric, Param, RunStatus
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

    client = client_for(settings)
    parent = client.get_run(parent_run_id)
    metric = spec.primary_metric

    def log(study: Any, trial: Any) -> None:
        tags = {
            MLFLOW_PARENT_RUN_ID: parent_run_id,
            MLFLOW_RUN_NAME: f"trial {trial.number}",
            "search.study": study.study_name,
            "search.trial": str(trial.number),
            "search.state": trial.state.name,
            "search.worker": str(trial.user_attrs.get("worker", "")),
        }
        run_id = client.create_run(parent.info.experiment_id, tags=tags).info.run_id
        now = int(time.time() * 1000)
        metrics = [
            Metric(f"cv_{metric}_fold{i}", float(v), now, 0)
            for i, v in enumerate(trial.user_attrs.get("fold_scores", []))
        ]
        if trial.value is not None:
            metrics.append(Metric(f"cv_{metric}", float(trial.value), now, 0))
        client.log_batch(run_id, metrics=metrics, params=[Param(k, str(v)) for k, v in trial.params.items()])
        client.set_terminated(
            run_id, "FINISHED" if trial.state.name == "COMPLETE" else RunStatus.to_string(RunStatus.FAILED)
        )

    return log


def finish_search_run(settings: Settings, parent_run_id: str, result: dict[str, Any]) -> None:
    """The search's decision on its parent run: best parameters (``best.<name>``), best value, trials."""
    from mlflow.entities import Metric, Param

    client = client_for(settings)
    now = int(time.time() * 1000)
    params = [Param(f"best.{k}", str(v)) for k, v in result["best_params"].items()]
    params += [Param(k, str(result[k])) for k in ("metric", "direction", "folds", "storage")]
    metrics = [
        Metric(f"best_cv_{result['metric']}", float(result["best_value"]), now, 0),
        Metric("complete_trials", float(result["complete_trials"]), now, 0),
        Metric("search_seconds", float(result["seconds"]), now, 0),
    ]
    client.log_batch(parent_run_id, metrics=metrics, params=params)
    client.set_tag(parent_run_id, "search.best_trial", str(result["best_trial"]))
    client.set_terminated(parent_run_id)


def search_tags(search: dict[str, Any]) -> dict[str, str]:
    """The version tags of a search's outcome (``search.*``); none when training did not search."""
    if not search.get("study_name"):
        return {}
    tags = {
        "search.study": str(search["study_name"]),
        "search.storage": str(search["storage"]),
        "search.metric": str(search["metric"]),
        "search.best_value": str(search["best_value"]),
        "search.best_trial": str(search["best_trial"]),
        "search.trials": str(search["complete_trials"]),
        "search.folds": str(search["folds"]),
        "search.mlflow_run_id": str(search.get("mlflow_run_id", "")),
        "search.best_params": dumps_json(search["best_params"]),
    }
    tags.update({f"search.best.{k}": str(v) for k, v in search["best_params"].items()})
    return tags
