"""The one place that configures ZenML and MLflow for this process.

Entry points call ``configure_libraries(settings)`` once at start-up, before importing either
library: the CLI (for the commands that need them), the service's app factory, the pipeline
runner and the retrain worker (and ``spark_environment``, the variables pyspark reads when the Spark
engine starts its JVM). Library code never writes ``os.environ`` or calls ``mlflow.set_*``
(``tests/unit/test_configure.py`` walks the source to prove it): MLflow clients are built with
explicit URIs from ``Settings`` and steps get their settings as parameters.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlops.settings import Settings

# The folder that holds the `mlops` package: ZenML's source root for step sources. Without it ZenML
# guesses from __main__, which fails under `python -c` and in subprocesses.
SOURCE_ROOT = Path(__file__).resolve().parent.parent

# What ZenML and MLflow read from the environment; a value the user set already wins.
LIBRARY_DEFAULTS = {
    "ZENML_ANALYTICS_OPT_IN": "false",
    "ZENML_ENABLE_RICH_TRACEBACK": "false",
    "ZENML_LOGGING_VERBOSITY": "WARN",
    "AUTO_OPEN_DASHBOARD": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "GIT_PYTHON_REFRESH": "quiet",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # tqdm bars of artifact downloads
    # A registry outage should surface in seconds (the service keeps serving), not after minutes.
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "15",
}
# Forced whatever the environment says (fail closed): MLflow then refuses to deserialize any model
# file itself. Our readers never ask it to: skops with our allow-list (``mlops.ml.trust``), or ONNX.
LIBRARY_FORCED = {"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"}


def configure_libraries(
    settings: Settings, *, shared_metrics_dir: Path | None = None, pipelines: bool = False
) -> Settings:
    """Point ZenML at the project's state folder and switch off what phones home; returns ``settings``.

    MLflow's tracking and registry URIs are also exported (``MLFLOW_TRACKING_URI``/``_REGISTRY_URI``),
    for the two readers we do not build ourselves: ZenML's MLflow integration (stack components) and
    MLflow's own ``models:/`` resolution inside libraries. Our code passes the URIs explicitly.

    ``shared_metrics_dir`` (the service with several workers, before it spawns them): a fresh folder
    where prometheus_client's multiprocess mode keeps every worker's samples, so one scrape sees them
    all. prometheus_client reads ``PROMETHEUS_MULTIPROC_DIR`` once, when a worker first imports it,
    and spawned workers inherit this process's environment: nothing else reaches them in time.

    ``pipelines`` (the pipeline runner): also memoise the package scan ZenML and MLflow repeat while
    a pipeline runs; other commands and the service never pay for its import.
    """
    if shared_metrics_dir is not None:
        shutil.rmtree(shared_metrics_dir, ignore_errors=True)
        shared_metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(shared_metrics_dir)
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ZENML_CONFIG_PATH", str(settings.zenml_config_path))
    os.environ.setdefault("ZENML_CUSTOM_SOURCE_ROOT", str(SOURCE_ROOT))
    for name, value in LIBRARY_DEFAULTS.items():
        os.environ.setdefault(name, value)
    os.environ.update(LIBRARY_FORCED)
    os.environ["MLFLOW_TRACKING_URI"] = settings.mlflow_tracking_uri
    os.environ["MLFLOW_REGISTRY_URI"] = settings.mlflow_registry_uri
    if pipelines:
        _cache_distribution_lookup()
    return settings


@contextmanager
def scoped_tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's process-wide tracking URI set to ``uri`` for one call, then put back as it was.

    For the one call that MLflow 3.17 offers no explicit URI for: its SQL model-registry store
    resolves a ``models:/m-<id>`` source with a bare ``MlflowClient()`` inside
    ``SqlAlchemyStore.create_model_version`` (MLflow's own TODO there), so registering a logged
    model on a SQLite/Postgres registry reads the global URI whatever the client was built with.
    Not thread-safe: used by training only, never on the service's request path.
    """
    import mlflow

    previous = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)  # type: ignore[arg-type]  # None: unset, as before the call


def _cache_distribution_lookup() -> None:
    """Memoise ``packages_distributions()`` for this process: the one monkeypatch of the project.

    ZenML resolves each materializer's package with ``importlib.metadata.packages_distributions()``
    and MLflow checks our pinned requirements with the ``importlib_metadata`` backport's copy of it;
    each call rescans every installed distribution (0.5-0.7 s here). The installed set does not
    change while a command runs, so both share one scan (the two agree on every package name).
    Measured by ``benchmarks/distribution_cache.py`` (``mlops train --project iris``, 3 runs each,
    interleaved, on this 2-core shared machine): median 20.0 s CPU with the memo, 23.2 s without
    (-3.2 s, -14 %; every run with it used less CPU than every run without). Figures in
    ``benchmarks/results/distribution-cache.json``; wall time there swings with the machine's load.
    """
    import functools
    import importlib.metadata

    import importlib_metadata

    if not hasattr(importlib.metadata.packages_distributions, "cache_info"):
        importlib.metadata.packages_distributions = functools.cache(importlib.metadata.packages_distributions)
        importlib_metadata.packages_distributions = importlib.metadata.packages_distributions


def spark_environment(java_home: str) -> None:
    """What pyspark reads from the process environment when it starts the JVM: Java 17/21 and this
    interpreter for the Python workers (the system ``python3`` lacks pyarrow and the project)."""
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    os.environ["JAVA_HOME"] = java_home
