"""A registered model, ready to score: ONNX Runtime when its parity check passed, scikit-learn otherwise.

Shared by the service and batch scoring. Imports mlflow only while loading, never while scoring.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from mlops.settings import Settings
    from mlops.spec import ProjectSpec

logger = logging.getLogger(__name__)
RuntimeKind = Literal["onnx", "native"]


class Scorer(Protocol):
    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray: ...


class OnnxScorer:
    def __init__(self, spec: ProjectSpec, onnx_bytes: bytes, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.spec = spec
        self.session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        self.output = self.session.get_outputs()[1].name  # [label, probabilities] (no ZipMap)

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        from mlops.ml.onnx_export import onnx_feeds

        return np.asarray(self.session.run([self.output], onnx_feeds(self.spec, frame))[0])

    def predict_proba_rows(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """The request path: feeds built straight from validated dicts, no pandas (~20x cheaper)."""
        feeds: dict[str, np.ndarray] = {}
        for f in self.spec.features:
            if f.kind == "numeric":
                values = [np.nan if r.get(f.name) is None else r[f.name] for r in rows]
                feeds[f.name] = np.asarray(values, dtype=np.float32).reshape(-1, 1)
            else:
                feeds[f.name] = np.asarray([r.get(f.name) or "" for r in rows], dtype=object).reshape(-1, 1)
        return np.asarray(self.session.run([self.output], feeds)[0])


class NativeScorer:
    def __init__(self, model: Any) -> None:
        self.model = model

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        return np.asarray(self.model.predict_proba(frame))


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

    def predict_rows(self, rows: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """Class ids and probabilities for validated request rows (feature name -> value)."""
        from mlops.ml.evaluate import predict_classes

        if isinstance(self.scorer, OnnxScorer):
            proba = self.scorer.predict_proba_rows(rows)
        else:
            from mlops.ml.model import to_frame

            proba = self.scorer.predict_proba(to_frame(self.spec, rows))
        return predict_classes(self.spec, proba, self.threshold), proba

    def predict(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Class ids and probabilities for rows already shaped by ``ml.model.to_frame``."""
        from mlops.ml.evaluate import predict_classes

        proba = self.scorer.predict_proba(frame)
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
        scorer = NativeScorer(registry.load_native(version))
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
