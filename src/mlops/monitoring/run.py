"""One drift check: the training reference against a recent window, recorded where the service reads it.

The reference is the dataset artifact the serving model was trained on (named by its version's tags), so
drift is measured against what the model actually learned; the window is the latest rows of the
prediction log, or a batch input file. The HTML report goes under the state folder; the result goes
to the prediction-log database, which the service exports as ``mlops_*drift*`` gauges. What follows a
detected drift (alert, retrain, shadow) is the monitor's policy (``policy.py``, ``loop.py``), not a
side effect of a check: ``mlops drift`` only measures.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.errors import NotFound, UsageError

if TYPE_CHECKING:
    import pandas as pd

    from mlops.monitoring.drift import DriftResult
    from mlops.settings import Settings
    from mlops.spec import ProjectSpec

logger = logging.getLogger(__name__)


def reference_frame(
    settings: Settings, spec: ProjectSpec, version: str, max_rows: int = 20_000
) -> pd.DataFrame:
    """The training data of ``version`` (its ZenML dataset artifact); the spec's loader as a fallback."""
    from mlops.artifacts import load_artifact, training_run
    from mlops.registry import Registry

    tags = Registry(settings, spec.name).version(version).tags
    dataset = training_run(tags.get("zenml_run_id", ""), tags.get("dataset_hash", ""))["dataset"]
    frame: pd.DataFrame
    if dataset.get("resolved"):
        frame = load_artifact(dataset["artifact_version_id"])
    else:
        logger.warning("version %s has no dataset artifact; using the project's loader as reference", version)
        frame = spec.load(settings)
    frame = frame.drop(columns=[spec.target], errors="ignore")
    return frame.sample(max_rows, random_state=0) if len(frame) > max_rows else frame


def current_frame(settings: Settings, spec: ProjectSpec, source: Path | None, window: int) -> pd.DataFrame:
    if source is not None:
        from mlops.data.files import iter_chunks

        if not source.exists():
            raise UsageError(f"input file {source} does not exist")
        frame = next(iter_chunks(source, window), None)
        if frame is None:
            raise UsageError(f"input file {source} has no rows")
        return frame.head(window)
    from mlops.stores.predictions import read_predictions

    frame = read_predictions(settings.prediction_log_db_url, spec.name, limit=window)
    if frame.empty:
        raise NotFound(f"the prediction log has no predictions for {spec.name!r}", hint="pass --input FILE")
    return frame[[c for c in spec.feature_names if c in frame]]


def check(
    settings: Settings, spec: ProjectSpec, version: str, reference: pd.DataFrame, current: pd.DataFrame
) -> tuple[DriftResult, dict[str, Any]]:
    """Compute, save the report, record the result; return it with where it went."""
    from mlops.data.split import fingerprint
    from mlops.monitoring.drift import detect_drift
    from mlops.stores.drift import record_drift

    result = detect_drift(spec, reference, current, threshold_share=settings.drift_share_threshold)
    folder = settings.state_dir / "drift"
    folder.mkdir(parents=True, exist_ok=True)
    report = folder / f"{spec.name}-{datetime.now(UTC):%Y%m%dT%H%M%S}.html"
    report.write_text(result.html)
    reference_hash = fingerprint(reference)
    record_id = record_drift(
        settings.prediction_log_db_url,
        spec.name,
        result,
        model_version=version,
        reference_hash=reference_hash,
        report_path=str(report),
    )
    summary = {
        **result.as_dict(),
        "model_version": version,
        "reference_hash": reference_hash,
        "report_path": str(report),
        "record_id": record_id,
    }
    return result, summary
