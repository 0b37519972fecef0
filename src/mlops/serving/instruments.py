"""Prometheus metrics of the service (names are a contract with deploy/prometheus and Grafana).

With several workers, set ``PROMETHEUS_MULTIPROC_DIR`` (``mlops serve --workers N`` does) and the
exposition aggregates all workers.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

REQUESTS = Counter("mlops_http_requests", "HTTP requests by route and status.", ["route", "method", "status"])
LATENCY = Histogram(
    "mlops_http_request_duration_seconds", "Request latency.", ["route", "method"], buckets=LATENCY_BUCKETS
)
PREDICTIONS = Counter(
    "mlops_predictions", "Predictions by model version and label.", ["model_version", "label"]
)
MODEL_INFO = Gauge(
    "mlops_model_info",
    "The model being served (value 1).",
    ["name", "version", "alias", "runtime"],
    multiprocess_mode="livemax",
)
MODEL_LOADED = Gauge("mlops_model_loaded", "1 when a model is loaded.", multiprocess_mode="livemin")
SWAPS = Counter("mlops_model_swaps", "Model swaps by result.", ["result"])
REGISTRY_REACHABLE = Gauge(
    "mlops_registry_reachable", "1 when the last registry poll succeeded.", multiprocess_mode="livemin"
)
RETRAIN_JOBS = Counter("mlops_retrain_jobs", "Retrain jobs by state.", ["state"])
LOG_QUEUE = Gauge(
    "mlops_prediction_log_queue_depth", "Prediction-log queue depth.", multiprocess_mode="livesum"
)
LOG_DROPPED = Counter("mlops_prediction_log_dropped", "Prediction-log records dropped.")
LOG_WRITTEN = Counter("mlops_prediction_log_written", "Prediction-log records written.")
FEEDBACK = Counter("mlops_feedback", "Ground-truth feedback received.")
# Live evidence per version: a label belongs to a request, and counts for every version that scored it.
FEEDBACK_LABELS = Counter(
    "mlops_feedback_labels",
    "Ground-truth labels received, by the version that answered (a replaced label counts again).",
    ["project", "version"],
)
LIVE_ACCURACY = Gauge(
    "mlops_live_accuracy",
    "Share of a version's labelled requests it predicted right (one label per request).",
    ["project", "version"],
    multiprocess_mode="mostrecent",
)
LIVE_LABELLED = Gauge(
    "mlops_live_labelled",
    "Labelled requests behind mlops_live_accuracy (alert on accuracy only with enough of them).",
    ["project", "version"],
    multiprocess_mode="mostrecent",
)
DRIFT_SCORE = Gauge(
    "mlops_feature_drift_score",
    "Latest drift score per feature.",
    ["feature"],
    multiprocess_mode="mostrecent",
)
DRIFT_SHARE = Gauge("mlops_dataset_drift_share", "Share of drifted features.", multiprocess_mode="mostrecent")
DRIFT_DETECTED = Gauge(
    "mlops_dataset_drift_detected", "1 when dataset drift is detected.", multiprocess_mode="mostrecent"
)


# Progressive delivery (serving/rollout.py scores, governance/rollout.py guards)
ROLLOUT_PERCENT = Gauge(
    "mlops_rollout_percent",
    "The active rollout: share (percent) of requests (shadow) or routing keys (canary) on the candidate.",
    ["project", "candidate", "baseline", "mode"],
    multiprocess_mode="livemax",
)
CANDIDATE_SCORINGS = Counter(
    "mlops_candidate_scorings",
    "Requests scored by a rollout's candidate, by mode and result (ok, error, skipped: shadow queue full).",
    ["version", "mode", "result"],
)
CANDIDATE_LATENCY = Histogram(
    "mlops_candidate_scoring_duration_seconds",
    "The candidate's scoring time per row.",
    ["version", "mode"],
    buckets=LATENCY_BUCKETS,
)
SHADOW_AGREEMENT = Counter(
    "mlops_shadow_agreement",
    "Shadow-scored requests by whether the candidate's class agreed with production's answer.",
    ["version", "agree"],
)
CANARY_FALLBACKS = Counter(
    "mlops_canary_fallbacks", "Canary requests the candidate failed and production answered.", ["version"]
)
ROLLOUT_ROLLBACKS = Counter(
    "mlops_rollout_rollbacks", "Rollouts ended by the guard, by the budget breached.", ["project", "breach"]
)
GUARD_LEADER = Gauge(
    "mlops_rollout_guard_leader", "1 on the worker holding the guard's lease.", multiprocess_mode="livemax"
)
# Ready from a local cache (serving/model_cache.py)
MODEL_FROM_CACHE = Gauge(
    "mlops_model_served_from_cache",
    "1 while the model served came from the local cache and no registry poll has confirmed it yet.",
    multiprocess_mode="livemax",
)
CACHE_CORRUPT = Counter(
    "mlops_model_cache_corrupt", "Cached model versions ignored: checksum or load failed."
)
# The prediction log's spool (serving/prediction_writer.py)
LOG_SPOOL_BYTES = Gauge(
    "mlops_prediction_log_spool_bytes",
    "Bytes in the prediction log's local spool.",
    multiprocess_mode="livesum",
)
LOG_REFUSED = Counter(
    "mlops_prediction_log_refused",
    "Predictions refused (503) in the lossless setting because the spool was full.",
)


# Labelled counters start at 0 for every known label, so rate()/increase() see the first event.
for _result in ("success", "rejected"):
    SWAPS.labels(result=_result)
for _state in ("started", "succeeded", "failed"):
    RETRAIN_JOBS.labels(state=_state)


def exposition() -> tuple[bytes, str]:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


# ----- the hot path: labelled children cached (``labels()`` takes a lock and builds a key per call) -----
_predictions: dict[tuple[str, str], Any] = {}
_requests: dict[tuple[str, str, str], Any] = {}
_latency: dict[tuple[str, str], Any] = {}


def prediction(model_version: str, label: str) -> None:
    key = (model_version, label)
    child = _predictions.get(key)
    if child is None:
        child = _predictions[key] = PREDICTIONS.labels(model_version=model_version, label=label)
    child.inc()


def request(route: str, method: str, status: str, seconds: float) -> None:
    key = (route, method, status)
    counter = _requests.get(key)
    if counter is None:
        counter = _requests[key] = REQUESTS.labels(route=route, method=method, status=status)
    counter.inc()
    histogram = _latency.get(key[:2])
    if histogram is None:
        histogram = _latency[key[:2]] = LATENCY.labels(route=route, method=method)
    histogram.observe(seconds)


def live_evidence(project: str, version: str, correct: int, labelled: int) -> None:
    """A label arrived for a request ``version`` answered: its count, accuracy and label total."""
    FEEDBACK.inc()
    FEEDBACK_LABELS.labels(project=project, version=version).inc()
    LIVE_LABELLED.labels(project=project, version=version).set(labelled)
    if labelled:
        LIVE_ACCURACY.labels(project=project, version=version).set(correct / labelled)
