"""The service under load: real uvicorn with 2 workers at 64 connections, then 3 promotions while loaded.

Each test records its figures (tests/reliability/conftest.py); ``make reliability`` loads for 60 s.
"""

from __future__ import annotations

import json
import time

from tests.integration.processes import (
    EXAMPLE,
    LoadGenerator,
    failed,
    fresh_settings,
    latency_ms,
    metric_samples,
    promote_new_version,
    start_service,
    swap_counts,
)
from tests.reliability.conftest import FULL
from tests.support.training import train_register_promote

POLL_S = 0.3


def test_load_at_64_connections_has_no_errors(tmp_path, figures) -> None:
    """Closed-loop load over 64 keep-alive connections from the serving benchmark's asyncio client
    (the threaded LoadGenerator tops out near 0.8k req/s; this one drives ~4k)."""
    from benchmarks.serving import measure

    settings = fresh_settings(tmp_path)
    train_register_promote(settings, "iris")
    seconds = 60.0 if FULL else 12.0
    proc, base = start_service(settings.home, tmp_path, workers=2)
    try:
        port = int(base.rsplit(":", 1)[1])
        result = measure(port, "/predict", json.dumps(EXAMPLE).encode(), 64, warmup=2.0, seconds=seconds)
    finally:
        proc.stop()
    figures(
        connections=64,
        seconds=seconds,
        requests=result["requests"],
        errors=result["errors"],
        throughput_rps=round(result["rps"]),
        p50_ms=round(result["p50_ms"], 2),
        p99_ms=round(result["p99_ms"], 2),
    )
    assert result["requests"] > 1000, proc.tail()
    assert result["errors"] == 0, proc.tail()


def test_three_promotions_under_load_fail_no_request(tmp_path, figures) -> None:
    """Each version is trained beside the loaded service, promoted, and served by both workers within
    the 2 s hot-swap goal (plus one poll) before the next."""
    settings = fresh_settings(tmp_path)
    train_register_promote(settings, "iris")
    held = {"1"}  # every version that held production
    swap_s = []  # alias moved -> the last request answered by an older version was sent
    proc, base = start_service(settings.home, tmp_path, workers=2, MLOPS_POLL_INTERVAL_S=str(POLL_S))
    try:
        # three trainings beside the load (~40 s each on two busy cores): the load runs until the end
        with LoadGenerator(base, threads=16, max_seconds=600) as load:
            assert load.wait_for(lambda rs: len(rs) >= 200, timeout=60), proc.tail()
            for seed in (11, 12, 13):
                version = promote_new_version(settings, seed)
                moved = time.monotonic()
                held.add(version)
                assert load.converged(version, after=moved), f"v{version}\n{proc.tail()}"
                stale = [r.sent for r in load.snapshot() if r.sent > moved and r.version != version]
                swap_s.append(max(stale, default=moved) - moved)
        results = load.snapshot()
        swaps = swap_counts(base)
        info = metric_samples(base, "mlops_model_info")
    finally:
        proc.stop()
    errors = failed(results)
    figures(
        promotions=3,
        requests=len(results),
        errors=len(errors),
        swaps=swaps.get("success", 0),
        rejected=swaps.get("rejected", 0),
        max_swap_s=round(max(swap_s), 2),
        p50_ms=latency_ms(results, 0.5),
        p99_ms=latency_ms(results, 0.99),
    )
    assert not errors, f"{len(errors)} failed, e.g. {errors[:3]}\n{proc.tail()}"
    assert {r.version for r in results} == held
    assert swaps["success"] == 2 * 4 and swaps.get("rejected", 0) == 0  # 2 workers x (load + 3 swaps)
    assert max(swap_s) <= POLL_S + 2.0, f"an old version answered {max(swap_s):.2f} s after the move"
    assert [(s.labels["version"], s.labels["runtime"]) for s in info if s.value == 1] == [(version, "onnx")]
