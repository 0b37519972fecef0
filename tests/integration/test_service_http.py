"""The service under real uvicorn in a subprocess: hot swap within 2 s of the poll, and `mlops demo
--smoke` (registry outage, concurrent retrains and more faults live in tests/reliability/)."""

from __future__ import annotations

import subprocess
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlops.lifecycle import train_register_promote
from mlops.registry import Registry
from mlops.settings import Settings, apply_environment
from tests.integration.processes import (
    MLOPS,
    LoadGenerator,
    free_port,
    service_env,
    start_service,
)

pytestmark = pytest.mark.integration
POLL_S = 0.5


# ----- hot swap -----


def test_new_version_is_served_within_two_seconds_of_the_poll_without_a_failed_request(tmp_path) -> None:
    settings = apply_environment(Settings(home=tmp_path / "state", actor="pytest"))
    train_register_promote(settings, "iris")  # version 1, production
    registry = Registry(settings, "iris")
    proc, base = start_service(settings.home, tmp_path, workers=2, MLOPS_POLL_INTERVAL_S=str(POLL_S))
    try:
        with LoadGenerator(base, threads=4) as load:
            assert load.wait_for(lambda rs: len(rs) >= 200, timeout=60), "no load reached the service"
            train_register_promote(settings, "iris", seed=11)  # version 2, trained while serving
            current = registry.alias_version("production")
            if current != "2":  # a tie keeps the champion; the test needs the move
                registry.move_alias("production", expected=current, new="2")
            promoted = time.monotonic()
            converged = load.wait_for(
                lambda rs: (
                    sum(r.version == "2" for r in rs if r.sent > promoted) >= 200
                    and all(r.version == "2" for r in rs[-100:])
                ),
                timeout=30,
            )
        results = load.snapshot()
        metrics = httpx.get(f"{base}/metrics").text
    finally:
        proc.stop()
    failed = [r for r in results if r.status != 200]
    assert not failed, f"{len(failed)} failed requests, e.g. {failed[:3]}\n{proc.tail()}"
    assert converged, proc.tail()
    versions = {r.version for r in results}
    assert versions == {"1", "2"} and versions <= {v.version for v in registry.versions()}
    # Both workers switched: no response came from version 1 for a request sent later than
    # one poll interval plus 2 s after the alias moved.
    last_old = max(r.sent for r in results if r.version == "1")
    assert last_old - promoted <= POLL_S + 2.0, f"version 1 still answered {last_old - promoted:.2f} s later"
    assert len(results) > 400
    assert (
        'mlops_model_info{alias="production",name="iris-classifier",runtime="onnx",version="2"} 1.0'
        in metrics
    )
    swaps = {
        sample.labels["result"]: sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "mlops_model_swaps_total"
    }
    assert swaps.get("rejected", 0) == 0 and swaps["success"] == 4  # per worker: first load + the swap


# ----- demo -----


def test_demo_smoke(tmp_path) -> None:
    """`mlops demo --smoke` end to end (a real retrain over HTTP lives in tests/reliability/)."""
    out = subprocess.run(
        [MLOPS, "demo", "--smoke", "--port", str(free_port())],
        env=service_env(tmp_path / "state"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert '"model_version": "1"' in out.stdout and "/metrics" in out.stdout and "/docs" in out.stdout
