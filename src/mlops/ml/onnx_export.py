"""ONNX export of the fitted pipeline and the parity check that decides the serving runtime."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from mlops.spec import ProjectSpec


@dataclass(frozen=True)
class Parity:
    ok: bool
    rows: int
    class_agreement: float
    max_prob_diff: float
    tolerance: float
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def export(spec: ProjectSpec, model: Pipeline) -> bytes:
    """One ONNX input per column (float for numerics, string for categoricals), no ZipMap."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    inputs = [
        (f.name, FloatTensorType([None, 1]) if f.kind == "numeric" else StringTensorType([None, 1]))
        for f in spec.features
    ]
    onx = convert_sklearn(
        model, initial_types=inputs, options={id(model): {"zipmap": False}}, target_opset=17
    )
    return bytes(onx.SerializeToString())


def check_parity(
    spec: ProjectSpec, model: Pipeline, onnx_bytes: bytes, frame: pd.DataFrame, tolerance: float
) -> Parity:
    """Identical predicted classes and probabilities within ``tolerance`` on the holdout.

    The ONNX side goes through the scorer and feed builder that serving and batch scoring use
    (``ml.onnx_scorer``, ``ml.onnx_feeds``), so parity holds for the path that answers requests.
    """
    from mlops.ml.model import to_frame
    from mlops.ml.onnx_scorer import OnnxScorer

    x = to_frame(spec, frame)
    try:
        proba_onnx = np.asarray(OnnxScorer(spec, onnx_bytes).proba_frame(x), dtype=np.float64)
    except Exception as exc:  # conversion artefacts that load but cannot run are a parity failure
        return Parity(False, len(x), 0.0, float("inf"), tolerance, error=f"{type(exc).__name__}: {exc}")
    proba_native = model.predict_proba(x)
    agreement = float(np.mean(np.argmax(proba_onnx, axis=1) == np.argmax(proba_native, axis=1)))
    max_diff = float(np.max(np.abs(proba_onnx - proba_native))) if len(x) else 0.0
    return Parity(agreement == 1.0 and max_diff <= tolerance, len(x), agreement, max_diff, tolerance)
