"""The one ONNX Runtime scorer: class probabilities from feeds built by ``ml.onnx_feeds``.

The service (``runtime.LoadedModel.predict_rows``), batch scoring and the parity check at training
all score through this class; nothing outside it touches the onnxruntime session.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops.ml import onnx_feeds

if TYPE_CHECKING:
    import pandas as pd

    from mlops.ml.onnx_feeds import Feeds
    from mlops.spec import ProjectSpec


class OnnxScorer:
    """An ONNX Runtime session over a graph made by ``ml.onnx_export.export``.

    ``threads`` > 0 bounds the session's intra-op threads (the service runs one per worker).
    Raises whatever onnxruntime raises for bytes it cannot load.
    """

    def __init__(self, spec: ProjectSpec, onnx_bytes: bytes, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.spec = spec
        self._session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        self._output = [self._session.get_outputs()[1].name]  # [label, probabilities] (no ZipMap)

    def inputs(self, frame: pd.DataFrame) -> Feeds:
        """The model's inputs for ``frame`` (batch scoring builds them off the scoring thread)."""
        return onnx_feeds.from_frame(self.spec, frame)

    def proba(self, feeds: Feeds) -> np.ndarray:
        """Class probabilities (float32, one row per input row) for feeds from ``ml.onnx_feeds``."""
        return np.asarray(self._session.run(self._output, feeds)[0])

    def proba_rows(self, rows: Sequence[dict[str, Any]]) -> np.ndarray:
        """The request path: rows as dicts (feature name -> value), no pandas."""
        return self.proba(onnx_feeds.from_rows(self.spec, rows))

    def proba_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows of a frame holding the features (plain or dictionary-encoded columns)."""
        return self.proba(onnx_feeds.from_frame(self.spec, frame))
