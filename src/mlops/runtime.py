"""A registered model, ready to score: ONNX Runtime when its parity check passed, scikit-learn otherwise.

Shared by the service and batch scoring. Imports mlflow only while loading, never while scoring.
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
__all__ = ["LoadedModel", "NativeScorer", "OnnxScorer", "Scorer", "load", "load_checked"]


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
    """Load ``version``: its ONNX file when parity held at training (fall back loudly), else native."""
    import mlflow

    from mlops.registry import Registry

    registry = Registry(settings, project)
    info = registry.version(version)
    scorer: Scorer | None = None
    kind: RuntimeKind = "native"
    if prefer_onnx and info.onnx_parity:
        try:
            files = registry.client.get_model_version_download_uri(registry.name, version)
            onnx_bytes = Path(
                mlflow.artifacts.download_artifacts(
                    f"{files}/extra_files/model.onnx", tracking_uri=settings.mlflow_tracking_uri
                )
            ).read_bytes()
            scorer = OnnxScorer(_spec(project), onnx_bytes, threads)
            kind = "onnx"
        except Exception as exc:  # any failure here must leave a working native model
            logger.warning("ONNX unavailable for %s v%s, using native: %s", registry.name, version, exc)
    if scorer is None:
        scorer = NativeScorer(_spec(project), registry.load_native(version))
    threshold = info.tags.get("threshold")
    return LoadedModel(
        spec=_spec(project),
        name=registry.name,
        version=version,
        run_id=info.run_id,
        runtime=kind,
        scorer=scorer,
        threshold=float(threshold) if threshold else None,
        metrics=info.metrics,
        tags=info.tags,
        created_at=info.created_at,
    )


def load_checked(settings: Settings, project: str, version: str, *, threads: int = 0) -> LoadedModel:
    """Load ``version`` as the service does and prove it answers the use case's example sensibly.

    The one test of "servable": the service runs it before a swap, promotion before moving an alias.
    """
    model = load(settings, project, version, threads=threads)
    classes, proba = model.predict_rows([model.spec.example])
    n_classes = len(model.spec.class_names)
    if proba.shape != (1, n_classes) or not all(math.isfinite(p) for p in proba[0]):
        raise ValueError(f"smoke test returned probabilities {proba!r}")
    if abs(float(proba[0].sum()) - 1.0) > 1e-3 or not 0 <= int(classes[0]) < n_classes:
        raise ValueError(f"smoke test returned class {classes!r} with probabilities {proba!r}")
    return model


def _spec(project: str) -> ProjectSpec:
    from mlops.projects import get_project

    return get_project(project)
