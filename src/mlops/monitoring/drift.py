"""Data drift between the training reference and a recent window, computed with Evidently 0.7.

Evidently picks the test per column (Kolmogorov-Smirnov / chi-square p-values on small windows,
normed Wasserstein / Jensen-Shannon distances above 1,000 rows) and flags each column with its
drift test; ``detect_drift`` keeps the score, the flag and the method of every feature, the share
of drifted features, and the HTML report. Evidently costs seconds to import, so it is imported only
inside ``detect_drift``; nothing here touches the network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from mlops.spec import ProjectSpec


@dataclass(frozen=True)
class DriftResult:
    share: float  # drifted features / features compared
    detected: bool  # share >= threshold_share
    features: dict[str, dict[str, Any]]  # name -> {"score": float, "drifted": bool, "method": str}
    rows: int  # rows of the current window
    reference_rows: int = 0
    threshold_share: float = 0.3
    html: str = field(default="", repr=False)

    @property
    def drifted_features(self) -> list[str]:
        return [name for name, f in self.features.items() if f["drifted"]]

    def as_dict(self) -> dict[str, Any]:
        """Everything but the HTML report (JSON-ready)."""
        return {
            "share": self.share,
            "detected": self.detected,
            "threshold_share": self.threshold_share,
            "rows": self.rows,
            "reference_rows": self.reference_rows,
            "drifted_features": self.drifted_features,
            "features": self.features,
        }


def model_inputs(spec: ProjectSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """The spec's features with the model's dtypes; raw rows go through ``spec.prepare`` first."""
    from mlops.ml.model import to_frame

    if spec.prepare is not None and not all(name in frame.columns for name in spec.feature_names):
        frame = spec.prepare(frame)
    return to_frame(spec, frame)


def detect_drift(
    spec: ProjectSpec,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    threshold_share: float = 0.3,
) -> DriftResult:
    """Compare ``current`` with ``reference`` on the spec's features (other columns are ignored).

    Both frames may hold the model's features or, for use cases with ``prepare``, raw rows. The data
    set counts as drifted when at least ``threshold_share`` of the features drift.
    """
    if not 0.0 < threshold_share <= 1.0:
        raise ValueError("threshold_share must be within (0, 1]")
    if len(reference) == 0 or len(current) == 0:
        raise ValueError("drift needs rows in both the reference and the current window")
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref = model_inputs(spec, reference)
    cur = model_inputs(spec, current)
    definition = DataDefinition(
        numerical_columns=spec.numeric_features, categorical_columns=spec.categorical_features
    )
    report = Report([DataDriftPreset(drift_share=threshold_share)], include_tests=True)
    snapshot = report.run(
        current_data=Dataset.from_pandas(cur, data_definition=definition),
        reference_data=Dataset.from_pandas(ref, data_definition=definition),
    )
    result = snapshot.dict()
    failed = {
        test["metric_config"]["metric_id"]
        for test in result.get("tests", [])
        if test.get("status") in ("FAIL", "ERROR")
    }
    features: dict[str, dict[str, Any]] = {}
    for metric in result["metrics"]:
        config = metric.get("config", {})
        if not str(config.get("type", "")).endswith(":ValueDrift"):
            continue
        column = config["column"]
        features[column] = {
            "score": float(metric["value"]),
            "drifted": metric["id"] in failed,
            "method": str(config.get("method", "")),
        }
    ordered = {name: features[name] for name in spec.feature_names if name in features}
    share = sum(f["drifted"] for f in ordered.values()) / len(ordered) if ordered else 0.0
    return DriftResult(
        share=float(share),
        detected=bool(share >= threshold_share),
        features=ordered,
        rows=len(cur),
        reference_rows=len(ref),
        threshold_share=threshold_share,
        html=snapshot.get_html_str(as_iframe=False),
    )
