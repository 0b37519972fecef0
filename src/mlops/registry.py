"""Every MLflow model-registry call of the project: versions, tags, aliases and their compare-and-set.

Nothing else: deciding, auditing and the model card are governance's (``mlops.governance``), runs and
their artifacts are tracking's. Aliases only (``production``, ``staging``, ``challenger``); MLflow
stages are deprecated and ZenML's stage-based calls return nothing under MLflow 3.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.errors import AliasConflict, NotFound

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlops.settings import Settings

ALIASES = ("production", "staging", "challenger", "candidate")  # candidate: set only by `mlops rollout start`
METRIC_TAG = "metric."  # where older versions kept copies of their metrics (read as a fallback)
RUNS_PER_SEARCH = 100  # run ids per search_runs filter: a bounded query string on every backend


@dataclass
class VersionInfo:
    name: str
    version: str
    run_id: str
    created_at: str
    aliases: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def onnx_parity(self) -> bool:
        return self.tags.get("onnx_parity") == "true"

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "run_id": self.run_id,
            "created_at": self.created_at,
            "aliases": self.aliases,
            "metrics": self.metrics,
            "runtime": "onnx" if self.onnx_parity else "native",
            "onnx_parity": self.onnx_parity,
            "gates_passed": self.tags.get("gates_passed") == "true",
            "promotion": self.tags.get("promotion.outcome", ""),
            "tags": self.tags,
        }


class Registry:
    """Thin, typed wrapper over ``MlflowClient`` for one registered model."""

    def __init__(self, settings: Settings, project: str, client: MlflowClient | None = None) -> None:
        self.settings = settings
        self.project = project
        self.name = settings.registered_model_name(project)
        self._client = client

    @property
    def client(self) -> MlflowClient:
        """A client bound to these settings' URIs (never the process-wide ones)."""
        if self._client is None:
            from mlflow import MlflowClient

            self._client = MlflowClient(
                tracking_uri=self.settings.mlflow_tracking_uri, registry_uri=self.settings.mlflow_registry_uri
            )
        return self._client

    # ----- reads -----
    def alias_version(self, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(self.name, alias).version)
        except MlflowException as exc:
            if getattr(exc, "error_code", "") in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}:
                return None
            raise

    def aliases(self) -> dict[str, str]:
        from mlflow.exceptions import MlflowException

        try:
            model = self.client.get_registered_model(self.name)
        except MlflowException:
            return {}
        return {alias: str(version) for alias, version in (model.aliases or {}).items()}

    def version(self, version: str) -> VersionInfo:
        from mlflow.exceptions import MlflowException

        try:
            mv = self.client.get_model_version(self.name, str(version))
        except MlflowException as exc:
            # only "there is no such version" is NotFound; an unreachable or failing server stays what
            # it is, so promotion can tell "cannot judge now" from "does not exist" (governance.faults)
            if getattr(exc, "error_code", "") not in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}:
                raise
            raise NotFound(
                f"model {self.name!r} has no version {version}", hint="list versions with `mlops models`"
            ) from None
        run_metrics = self._run_metrics([str(mv.run_id or "")])
        return self._info(mv, run_metrics.get(str(mv.run_id or "")))

    def versions(self) -> list[VersionInfo]:
        found = self.client.search_model_versions(f"name='{self.name}'")
        holders: dict[str, list[str]] = {}
        for alias, version in self.aliases().items():
            holders.setdefault(version, []).append(alias)
        run_metrics = self._run_metrics([str(mv.run_id or "") for mv in found])
        infos = sorted(
            (self._info(mv, run_metrics.get(str(mv.run_id or ""))) for mv in found),
            key=lambda v: int(v.version),
        )
        for info in infos:  # search results do not carry aliases on every backend
            info.aliases = sorted(set(info.aliases) | set(holders.get(info.version, [])))
        return infos

    def _run_metrics(self, run_ids: list[str]) -> dict[str, dict[str, float]]:
        """Each run's metrics: where they live (the run and its logged model), not copies in version
        tags. One ``search_runs`` in the project's experiment per ``RUNS_PER_SEARCH`` of them; a run
        found elsewhere is read alone; a run that is gone leaves its version to the old ``metric.*``
        tags."""
        from mlflow.exceptions import MlflowException

        wanted = sorted({r for r in run_ids if r})
        if not wanted:
            return {}
        out: dict[str, dict[str, float]] = {}
        experiment = (
            self.client.get_experiment_by_name(self.settings.experiment(self.project))
            if len(wanted) > 1
            else None
        )
        ids = [experiment.experiment_id] if experiment is not None else []
        for start in range(0, len(wanted) if ids else 0, RUNS_PER_SEARCH):
            chunk = wanted[start : start + RUNS_PER_SEARCH]
            quoted = ", ".join(f"'{r}'" for r in chunk)
            runs = self.client.search_runs(ids, f"attributes.run_id IN ({quoted})", max_results=len(chunk))
            out.update({run.info.run_id: dict(run.data.metrics) for run in runs})
        for run_id in set(wanted) - set(out):
            try:
                out[run_id] = dict(self.client.get_run(run_id).data.metrics)
            except MlflowException:
                continue
        return out

    def _info(self, mv: Any, run_metrics: dict[str, float] | None = None) -> VersionInfo:
        tags = dict(mv.tags or {})
        # Versions registered before metrics left the tags still show theirs.
        metrics = {k.removeprefix(METRIC_TAG): float(v) for k, v in tags.items() if k.startswith(METRIC_TAG)}
        metrics.update(run_metrics or {})
        created = datetime.fromtimestamp(int(mv.creation_timestamp) / 1000, tz=UTC).isoformat()
        return VersionInfo(
            name=self.name,
            version=str(mv.version),
            run_id=str(mv.run_id or ""),
            created_at=created,
            aliases=sorted(mv.aliases or []),
            metrics=metrics,
            tags={k: v for k, v in tags.items() if not k.startswith(METRIC_TAG)},
        )

    # ----- writes -----
    def tag_version(self, version: str, tags: dict[str, Any]) -> None:
        for key, value in tags.items():
            text = value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
            self.client.set_model_version_tag(self.name, str(version), key, text)

    def move_alias(self, alias: str, *, expected: str | None, new: str) -> None:
        """Compare-and-set: re-read the alias right before moving it; refuse if it changed. Atomic only
        under the alias lock that ``governance.ledger.move`` holds: every decision moves aliases there."""
        current = self.alias_version(alias)
        if current != expected:
            raise AliasConflict(
                f"alias {alias!r} of {self.name!r} moved from {expected} to {current} meanwhile; refused",
                hint="someone else promoted meanwhile; re-run the decision",
            )
        self.client.set_registered_model_alias(self.name, alias, str(new))

    def tag_model(self, key: str, value: str) -> None:
        self.client.set_registered_model_tag(self.name, key, value)

    def set_alias(self, alias: str, version: str) -> None:
        """Set ``alias`` without a comparison: only for aliases no decision depends on (``challenger``)."""
        self.client.set_registered_model_alias(self.name, alias, str(version))

    def drop_alias(self, alias: str) -> None:
        self.client.delete_registered_model_alias(self.name, alias)

    # ----- models -----
    def load_native(self, version: str) -> Any:
        """The version's scikit-learn model, loaded by skops with OUR allow-list (``ml.trust``).

        Never ``mlflow.sklearn.load_model``: it would trust the types the model's own MLmodel file
        lists, and unpickle any other format. Files come through these settings' URIs only (MLflow
        resolves ``models:/…`` URIs through the process-wide registry URI, whatever is passed).
        """
        import tempfile

        from mlops.ml import trust

        with tempfile.TemporaryDirectory(prefix="mlops-model-") as tmp:
            return trust.load(self._download_native(version, Path(tmp)))

    def verify_native(self, version: str) -> None:
        """Prove the version's native file is skops with trusted types only, without loading it.

        For the service serving the ONNX file: a version whose native artifact is untrusted is
        refused whichever runtime answers (promotion and rollback may load that artifact).
        """
        import tempfile

        from mlops.ml import trust

        with tempfile.TemporaryDirectory(prefix="mlops-model-") as tmp:
            trust.verify(self._download_native(version, Path(tmp)))

    def _download_native(self, version: str, dst: Path) -> Path:
        """The version's MLmodel file and the native file it names, downloaded into ``dst``
        (not the ONNX file nor the environment files: the check needs only these two)."""
        import mlflow.artifacts

        from mlops.ml import trust

        location = self.client.get_model_version_download_uri(self.name, str(version))
        uris = {
            "tracking_uri": self.settings.mlflow_tracking_uri,
            "registry_uri": self.settings.mlflow_registry_uri,
        }
        mlflow.artifacts.download_artifacts(artifact_uri=f"{location}/MLmodel", dst_path=str(dst), **uris)
        name = trust.file_name(dst)
        mlflow.artifacts.download_artifacts(artifact_uri=f"{location}/{name}", dst_path=str(dst), **uris)
        return dst

    def threshold(self, version: str) -> float | None:
        """The decision threshold stored with a binary model (None: argmax)."""
        value = self.version(version).tags.get("threshold")
        return float(value) if value else None

    def input_signature(self, version: str) -> list[dict[str, Any]] | None:
        """The inputs of the version's MLflow model signature (``name``, ``type``, ...), read from its
        MLmodel file through these settings' URIs; None when the version records no signature.
        The compatibility gate compares them: a changed input breaks the clients of an alias."""
        import tempfile

        import mlflow.artifacts
        from mlflow.models import Model

        location = self.client.get_model_version_download_uri(self.name, str(version))
        with tempfile.TemporaryDirectory(prefix="mlops-mlmodel-") as tmp:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"{location.rstrip('/')}/MLmodel",
                dst_path=tmp,
                tracking_uri=self.settings.mlflow_tracking_uri,
                registry_uri=self.settings.mlflow_registry_uri,
            )
            signature = Model.load(local).signature
        if signature is None or signature.inputs is None:
            return None
        return [dict(column) for column in signature.inputs.to_dict()]
