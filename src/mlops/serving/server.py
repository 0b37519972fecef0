"""Run the service under uvicorn (app factory), one or several workers."""

from __future__ import annotations

import os
import shutil

from mlops.settings import Settings


def serve(settings: Settings, project: str, host: str, port: int, workers: int = 1) -> None:
    import uvicorn

    os.environ["MLOPS_PROJECT"] = project  # workers build their app from the environment
    if workers > 1:  # one Prometheus exposition over all workers
        metrics_dir = settings.state_dir / "prometheus-multiproc"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    uvicorn.run(
        "mlops.serving.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="warning",
        timeout_graceful_shutdown=20,
    )
