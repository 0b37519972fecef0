"""Data drift between the training reference and current inputs, measured with Evidently 0.7.

``detect_drift`` runs ``Report([DataDriftPreset()], include_tests=True)`` over the spec's features
(numeric and categorical as the spec declares them), and returns the per-feature scores and flags,
the share of drifted features, the overall verdict and the self-contained HTML report. Evidently
picks the test per column from the data size: for more than 1,000 reference rows a distance
(Wasserstein for numerics, Jensen-Shannon for categoricals; drift when the distance exceeds 0.1),
below that a p-value (K-S or chi-squared; drift when p < 0.05). ``score`` is that statistic and
``method`` names it, so compare scores of one feature over time, not across features.

Overall drift: ``share >= threshold_share`` (Evidently's "dataset drift" rule). Nothing here uses
the network; the HTML embeds its scripts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from mlops.projects.base import ProjectSpec


@dataclass(frozen=True)
class FeatureDrift:
    score: float
    drifted: bool
    method: str
    threshold: float


@dataclass(frozen=True)
class DriftResult:
    share: float  # drifted features / features compared
    detected: bool  # share >= threshold_share
    threshold_share: float
    features: dict[str, FeatureDrift]
    reference_rows: int
    current_rows: int
    html: str = field(repr=False, default="")

    @property
    def drifted_features(self) -> list[str]:
        return sorted(name for name, f in self.features.items() if f.drifted)

    @property
    def scores(self) -> dict[str, float]:
        return {name: f.score for name, f in self.features.items()}

    def save_html(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.html, encoding="utf-8")
        return path

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the HTML)."""
        out = asdict(self)
        out.pop("html")
        out["drifted_features"] = self.drifted_features
        return out


def _frame(spec: ProjectSpec, frame: pd.DataFrame) -> pd.DataFrame:
    """The spec's features, typed as the model sees them (float numerics, str categoricals)."""
    from mlops.ml.model import to_frame

    missing = [name for name in spec.feature_names if name not in frame.columns]
    if missing:
        raise ValueError(f"missing feature column(s) for drift detection: {', '.join(missing)}")
    return to_frame(spec, frame)


def detect_drift(
    spec: ProjectSpec,
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    threshold_share: float = 0.3,
    html_path: str | Path | None = None,
) -> DriftResult:
    """Compare ``current`` with ``reference`` on the spec's features (frames in the feature format).

    Raw inputs (e.g. rows of the raw file) should go through ``spec.prepare`` first. ``html_path``
    additionally writes the report there.
    """
    if not 0.0 < threshold_share <= 1.0:
        raise ValueError("threshold_share must be within (0, 1]")
    if reference.empty or current.empty:
        raise ValueError("drift detection needs rows in both the reference and the current data")
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    definition = DataDefinition(
        numerical_columns=spec.numeric_features, categorical_columns=spec.categorical_features
    )
    ref = Dataset.from_pandas(_frame(spec, reference), data_definition=definition)
    cur = Dataset.from_pandas(_frame(spec, current), data_definition=definition)
    preset = DataDriftPreset(columns=spec.feature_names, drift_share=threshold_share)
    snapshot = Report([preset], include_tests=True).run(current_data=cur, reference_data=ref)
    features = _parse(snapshot.dict(), spec.feature_names)
    share = sum(f.drifted for f in features.values()) / len(features) if features else 0.0
    result = DriftResult(
        share=float(share),
        detected=bool(features) and share >= threshold_share,
        threshold_share=threshold_share,
        features=features,
        reference_rows=len(reference),
        current_rows=len(current),
        html=snapshot.get_html_str(as_iframe=False),
    )
    if html_path is not None:
        result.save_html(html_path)
    return result


def _parse(report: dict[str, Any], columns: list[str]) -> dict[str, FeatureDrift]:
    """Per-column score (ValueDrift metric) and flag (its test: FAIL means drift) from a snapshot dict."""
    scores: dict[str, tuple[str, float, str, float]] = {}  # column -> (metric id, score, method, threshold)
    for metric in report.get("metrics", []):
        config = metric.get("config", {})
        if not str(config.get("type", "")).endswith("ValueDrift"):
            continue
        column = config.get("column")
        if column in columns:
            scores[column] = (
                metric["id"],
                float(metric["value"]),
                str(config.get("method", "")),
                float(config.get("threshold") or 0.0),
            )
    status_by_metric = {
        test.get("metric_config", {}).get("metric_id"): test.get("status") for test in report.get("tests", [])
    }
    out: dict[str, FeatureDrift] = {}
    for column in columns:
        if column not in scores:
            continue
        metric_id, score, method, threshold = scores[column]
        status = status_by_metric.get(metric_id)
        if status is None:  # no test (should not happen with include_tests): decide from the method
            p_value = "p_value" in method or "test" in method.lower()
            drifted = score < threshold if p_value else score > threshold
        else:
            drifted = status == "FAIL"
        out[column] = FeatureDrift(score=score, drifted=bool(drifted), method=method, threshold=threshold)
    return out
