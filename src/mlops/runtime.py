"""A registered model, ready to score: ONNX Runtime when its parity check passed, scikit-learn otherwise.

Nothing here unpickles: the native model is skops-loaded with our allow-list (``ml.trust``), the
ONNX file is checked against its recorded sha256.

Shared by the service and batch scoring. Imports mlflow only while loading, never while scoring;
``from_onnx`` builds a model from ONNX bytes the caller already holds (the service's local cache,
``serving.model_cache``) and never imports it.
The ONNX scorer is ``ml.onnx_scorer.OnnxScorer`` (re-exported here): the parity check at training
scores through it too, and ``ml`` sits below this module.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from mlops.ml.evaluate import predict_classes
from mlops.ml.onnx_scorer import OnnxScorer

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

    from mlops.settings import Settings
    from mlops.spec import ProjectSpec

logger = logging.getLogger(__name__)
RuntimeKind = Literal["onnx", "native"]
__all__ = [
    "LoadedModel",
    "NativeScorer",
    "OnnxScorer",
    "Scorer",
    "check_scorer",
    "from_onnx",
    "load",
    "load_checked",
    "onnx_file",
]


class Scorer(Protocol):
    """Class probabilities, one row per input row: ONNX Runtime or the native model.

    ``inputs`` shapes a frame holding the features into what ``proba`` takes (ONNX feeds, or the
    ``to_frame`` frame), so batch scoring can build chunk k+1's inputs while chunk k scores.
    """

    def inputs(self, frame: pd.DataFrame) -> Any: ...

    def proba(self, inputs: Any) -> np.ndarray: ...

    def proba_rows(self, rows: Sequence[dict[str, Any]]) -> np.ndarray: ...

    def proba_frame(self, frame: pd.DataFrame) -> np.ndarray: ...


class NativeScorer:
    """The registered scikit-learn pipeline, for versions whose ONNX parity failed."""

    def __init__(self, spec: ProjectSpec, model: Any) -> None:
        self.spec = spec
        self.model = model

    def inputs(self, frame: pd.DataFrame) -> pd.DataFrame:
        from mlops.ml.model import to_frame

        return to_frame(self.spec, frame)

    def proba(self, inputs: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model.predict_proba(inputs))

    def proba_rows(self, rows: Sequence[dict[str, Any]]) -> np.ndarray:
        from mlops.ml.model import to_frame

        return self.proba(to_frame(self.spec, list(rows)))

    def proba_frame(self, frame: pd.DataFrame) -> np.ndarray:
        return self.proba(self.inputs(frame))


@dataclass
class LoadedModel:
    spec: ProjectSpec
    name: str
    version: str
    run_id: str
    runtime: RuntimeKind
    scorer: Scorer
    threshold: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    # The verified ONNX file this scorer was built from (None for a native model): what the
    # service's local cache stores, so it never downloads a version twice.
    onnx_bytes: bytes | None = field(default=None, repr=False)

    def predict_rows(self, rows: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """Class ids and probabilities for validated request rows (feature name -> value)."""
        proba = self.scorer.proba_rows(rows)
        return predict_classes(self.spec, proba, self.threshold), proba

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Class ids and probabilities for a frame holding the features."""
        proba = self.scorer.proba_frame(frame)
        return predict_classes(self.spec, proba, self.threshold), proba


def load(
    settings: Settings, project: str, version: str, *, prefer_onnx: bool = True, threads: int = 0
) -> LoadedModel:
    """Load ``version``: its ONNX file when parity held at training, else the native model.

    Refused (``ml.trust.UntrustedModel``), whichever runtime would answer: a native file that is
    not skops or names a type outside our allow-list (checked without loading it), and an ONNX
    file whose sha256 is not the one recorded at registration (tampering, never a fallback). An
    ONNX file that cannot be fetched or opened falls back, loudly, to the native model.
    """
    from mlops.registry import Registry

    registry = Registry(settings, project)
    info = registry.version(version)
    spec = _spec(project)
    scorer: Scorer | None = None
    kind: RuntimeKind = "native"
    onnx_bytes: bytes | None = None
    if prefer_onnx and info.onnx_parity:
        registry.verify_native(version)  # the native file is the fallback and promotion's: trusted too
        data = onnx_file(settings, project, version, info.tags.get("onnx_sha256"), registry)
        if data is not None:
            try:
                scorer = OnnxScorer(spec, data, threads)
                kind, onnx_bytes = "onnx", data
            except Exception as exc:  # an ONNX Runtime that cannot open it must leave a native model
                logger.warning("ONNX unusable for %s v%s, using native: %s", registry.name, version, exc)
    if scorer is None:
        scorer = NativeScorer(spec, registry.load_native(version))
    threshold = info.tags.get("threshold")
    return LoadedModel(
        spec=spec,
        name=registry.name,
        version=version,
        run_id=info.run_id,
        runtime=kind,
        scorer=scorer,
        threshold=float(threshold) if threshold else None,
        metrics=info.metrics,
        tags=info.tags,
        created_at=info.created_at,
        onnx_bytes=onnx_bytes,
    )


def from_onnx(
    project: str,
    onnx_bytes: bytes,
    *,
    name: str,
    version: str,
    run_id: str,
    threshold: float | None = None,
    metrics: dict[str, float] | None = None,
    tags: dict[str, str] | None = None,
    created_at: str = "",
    threads: int = 0,
) -> LoadedModel:
    """A ``LoadedModel`` scored by ONNX Runtime from bytes and metadata the caller already trusts.

    No registry, no mlflow import: the caller has verified ``onnx_bytes`` (the service's cache
    checks them against the sha256 it recorded when the registry served them). Raises whatever
    ONNX Runtime raises for bytes it cannot open; run ``check_scorer`` before serving the result.
    """
    return LoadedModel(
        spec=_spec(project),
        name=name,
        version=version,
        run_id=run_id,
        runtime="onnx",
        scorer=OnnxScorer(_spec(project), onnx_bytes, threads),
        threshold=threshold,
        metrics=dict(metrics or {}),
        tags=dict(tags or {}),
        created_at=created_at,
        onnx_bytes=onnx_bytes,
    )


def onnx_file(
    settings: Settings, project: str, version: str, expected_sha256: str | None, registry: Any = None
) -> bytes | None:
    """The version's ``model.onnx``, verified against the sha256 recorded at registration.

    ``None`` when it cannot be downloaded (the caller falls back to native); ``UntrustedModel``
    when its bytes differ from what training registered. For every engine that scores the ONNX
    file: the service and ``mlops predict`` through ``load``, batch engines directly.
    """
    import mlflow.artifacts

    from mlops.ml.trust import check_sha256
    from mlops.registry import Registry

    registry = registry or Registry(settings, project)
    try:
        files = registry.client.get_model_version_download_uri(registry.name, version)
        data = Path(
            mlflow.artifacts.download_artifacts(
                f"{files}/extra_files/model.onnx", tracking_uri=settings.mlflow_tracking_uri
            )
        ).read_bytes()
    except Exception as exc:  # unreachable store, missing file: the native model still answers
        logger.warning("ONNX unavailable for %s v%s, using native: %s", registry.name, version, exc)
        return None
    return check_sha256(data, expected_sha256, f"the ONNX file of {registry.name} v{version}")


def check_scorer(spec: ProjectSpec, scorer: Scorer, threshold: float | None = None) -> None:
    """Prove ``scorer`` answers the use case's example sensibly; raise ``ValueError`` otherwise.

    A model that loads can still answer garbage (NaN, the wrong number of classes, rows that are
    not distributions): the one test of "servable", run before a swap and before moving an alias.
    """
    proba = np.asarray(scorer.proba_rows([spec.example]), dtype=float)
    n_classes = len(spec.class_names)
    if proba.shape != (1, n_classes):
        raise ValueError(f"smoke test returned probabilities of shape {proba.shape}, not (1, {n_classes})")
    if not all(math.isfinite(p) and -1e-6 <= p <= 1.0 + 1e-6 for p in proba[0]):  # float32 rounding
        raise ValueError(f"smoke test returned probabilities {proba.tolist()!r}")
    if abs(float(proba[0].sum()) - 1.0) > 1e-3:
        raise ValueError(f"smoke test returned probabilities summing to {float(proba[0].sum())}")
    classes = predict_classes(spec, proba, threshold)
    if classes.shape != (1,) or not 0 <= int(classes[0]) < n_classes:
        raise ValueError(f"smoke test returned class {classes!r} with probabilities {proba.tolist()!r}")


def load_checked(settings: Settings, project: str, version: str, *, threads: int = 0) -> LoadedModel:
    """Load ``version`` as the service does (trust checks included) and ``check_scorer`` it.

    The service runs it before a swap, promotion before moving an alias.
    """
    model = load(settings, project, version, threads=threads)
    check_scorer(model.spec, model.scorer, model.threshold)
    return model


def _spec(project: str) -> ProjectSpec:
    from mlops.projects import get_project

    return get_project(project)
