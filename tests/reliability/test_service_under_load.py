"""The service as production meets it: real uvicorn with 2 workers, loaded while things happen to it.

Load at 64 connections; three promotions under load; a corrupt version moved into the alias behind
governance's back; the MLflow server SIGKILLed and brought back; the service itself stopped and
restarted mid-load (graceful shutdown). Every test records its figures (tests/reliability/conftest.py).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from mlops.lifecycle import train_register_promote
from mlops.registry import Registry
from mlops.settings import Settings, apply_environment
from tests.integration.processes import (
    EXAMPLE,
    LoadGenerator,
    Result,
    free_port,
    latency_ms,
    mlflow_server,
    service_env,
    start_service,
)
from tests.reliability.conftest import FULL

POLL_S = "0.3"


def _home(tmp_path: Path, **extra: str) -> Settings:
    return apply_environment(Settings(home=tmp_path / "state", actor="pytest", **extra))  # type: ignore[arg-type]


def _promote_new_version(settings: Settings, seed: int) -> str:
    """Train, register and make the new version production (a tie keeps the champion: move it)."""
    registry = Registry(settings, "iris")
    version = train_register_promote(settings, "iris", seed=seed)["model"]["version"]
    current = registry.alias_version("production")
    if current != version:
        registry.move_alias("production", expected=current, new=version)
    return str(version)


def _converged(load: LoadGenerator, version: str, after: float, timeout: float = 30) -> bool:
    """Every worker answers with ``version``: 100 answers in a row sent after ``after``."""
    return load.wait_for(
        lambda rs: (
            len(later := [r for r in rs if r.sent > after]) >= 100
            and all(r.version == version for r in later[-100:])
        ),
        timeout=timeout,
    )


def _failures(results: list[Result]) -> list[Result]:
    return [r for r in results if r.status != 200]


def _swaps(base: str) -> dict[str, float]:
    text = httpx.get(f"{base}/metrics").text
    return {
        sample.labels["result"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "mlops_model_swaps_total"
    }


def test_load_at_64_connections_has_no_errors(tmp_path, figures) -> None:
    """Closed-loop load over 64 keep-alive connections from the serving benchmark's asyncio client
    (a transport error raises); 60 s under ``make reliability``."""
    from benchmarks.serving import measure

    settings = _home(tmp_path)
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
    settings = _home(tmp_path)
    train_register_promote(settings, "iris")
    held = {"1"}
    proc, base = start_service(settings.home, tmp_path, workers=2, MLOPS_POLL_INTERVAL_S=POLL_S)
    try:
        with LoadGenerator(base, threads=16) as load:
            assert load.wait_for(lambda rs: len(rs) >= 200, timeout=60), proc.tail()
            for seed in (11, 12, 13):
                version = _promote_new_version(settings, seed)
                held.add(version)
                assert _converged(load, version, after=time.monotonic()), f"v{version}\n{proc.tail()}"
        results = load.snapshot()
        swaps = _swaps(base)
    finally:
        proc.stop()
    failed = _failures(results)
    figures(promotions=3, requests=len(results), errors=len(failed), p99_ms=latency_ms(results, 0.99))
    assert not failed, f"{len(failed)} failed, e.g. {failed[:3]}\n{proc.tail()}"
    assert {r.version for r in results} == held  # only versions that held production answered
    assert swaps["success"] == 2 * 4 and swaps.get("rejected", 0) == 0  # 2 workers x (load + 3 swaps)


def test_a_corrupt_version_in_the_alias_is_rejected_by_every_worker(
    tmp_path, figures, corrupt_version
) -> None:
    """Governance refuses a corrupt version (unit-tested); here the alias is moved behind its back."""
    settings = _home(tmp_path)
    train_register_promote(settings, "iris")
    registry = Registry(settings, "iris")
    bad = train_register_promote(settings, "iris", seed=11)["model"]["version"]
    if registry.alias_version("production") != "1":
        registry.move_alias("production", expected=bad, new="1")
    corrupt_version(settings, "iris", bad)
    proc, base = start_service(settings.home, tmp_path, workers=2, MLOPS_POLL_INTERVAL_S=POLL_S)
    try:
        with LoadGenerator(base, threads=8) as load:
            assert load.wait_for(lambda rs: len(rs) >= 100, timeout=60), proc.tail()
            registry.move_alias("production", expected="1", new=bad)
            deadline = time.monotonic() + 30
            while _swaps(base).get("rejected", 0) < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            rejected = _swaps(base).get("rejected", 0)
            ready = httpx.get(f"{base}/ready").json()
            good = _promote_new_version(settings, 12)
            assert _converged(load, good, after=time.monotonic()), proc.tail()
        results = load.snapshot()
    finally:
        proc.stop()
    failed = _failures(results)
    figures(requests=len(results), errors=len(failed), workers_rejecting=rejected)
    assert rejected == 2, f"expected both workers to reject v{bad}\n{proc.tail()}"
    assert bad in ready["rejected_versions"] and ready["model_version"] == "1", ready
    assert not failed, f"{len(failed)} failed, e.g. {failed[:3]}"
    assert bad not in {r.version for r in results}


def test_mlflow_server_killed_while_serving_and_brought_back(tmp_path, figures) -> None:
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    env = service_env(tmp_path / "state", MLOPS_TRACKING_URI=uri)
    mlflow = mlflow_server(tmp_path, port, env)
    proc = None
    try:
        settings = _home(tmp_path, tracking_uri=uri)
        train_register_promote(settings, "iris")
        proc, base = start_service(
            settings.home, tmp_path, workers=2, MLOPS_TRACKING_URI=uri, MLOPS_POLL_INTERVAL_S=POLL_S
        )
        with LoadGenerator(base, threads=8) as load:
            assert load.wait_for(lambda rs: len(rs) >= 100, timeout=60), proc.tail()
            mlflow.kill()
            outage = time.monotonic()
            assert load.wait_for(
                lambda rs: httpx.get(f"{base}/ready").json()["registry_reachable"] is False, timeout=30
            ), proc.tail()
            assert "mlops_registry_reachable 0.0" in httpx.get(f"{base}/metrics").text
            during = len([r for r in load.snapshot() if r.sent > outage])
            mlflow = mlflow_server(tmp_path, port, env)
            assert load.wait_for(
                lambda rs: httpx.get(f"{base}/ready").json()["registry_reachable"] is True, timeout=60
            ), proc.tail()
            version = _promote_new_version(settings, 11)
            assert _converged(load, version, after=time.monotonic()), proc.tail()
        results = load.snapshot()
    finally:
        if proc is not None:
            proc.stop()
        mlflow.stop()
    failed = _failures(results)
    figures(requests=len(results), errors=len(failed), served_while_registry_down=during)
    assert not failed, f"{len(failed)} failed, e.g. {failed[:3]}"
    assert during > 0


def _logged_ids(home: Path) -> set[str]:
    with sqlite3.connect(Settings(home=home).state_dir / "predictions.db") as db:
        return {row[0] for row in db.execute("SELECT request_id FROM predictions")}


def test_restart_under_load_drains_requests_and_the_log(tmp_path, figures) -> None:
    """SIGTERM mid-load: what the server took in is answered and logged; nothing else is lost."""
    settings = _home(tmp_path)
    train_register_promote(settings, "iris")
    proc, base = start_service(settings.home, tmp_path, workers=2)
    restarted = None
    try:
        with LoadGenerator(base, threads=16) as load:
            assert load.wait_for(lambda rs: len(rs) >= 500, timeout=60), proc.tail()
            stop_at = time.monotonic()
            proc.stop()  # SIGTERM: uvicorn's graceful shutdown, then the app's lifespan drains the log
            assert proc.popen.returncode == 0, proc.tail()
            before = load.snapshot()
            logged = _logged_ids(settings.home)
        restarted, base2 = start_service(settings.home, tmp_path, workers=2)
        with LoadGenerator(base2, threads=16, max_seconds=3) as resumed:
            resumed.wait_for(lambda rs: False, timeout=3)
    finally:
        for p in (proc, restarted):
            if p is not None:
                p.stop()
    answered = {r.request_id for r in before if r.status == 200}
    server_errors = [r for r in before if r.status >= 500]
    not_taken = [r for r in before if r.status == 0]
    figures(
        requests=len(before),
        answered=len(answered),
        logged=len(logged),
        refused_while_down=len(not_taken),
        server_errors=len(server_errors),
        in_flight_at_sigterm=len([r for r in before if r.sent <= stop_at < r.received]),
        after_restart=len(resumed.snapshot()),
    )
    assert not server_errors, server_errors[:3]
    # Every answer was logged, and nothing was logged that the client did not get: the server
    # answered everything it took in, and drained its queue before exiting.
    assert answered == logged, (len(answered - logged), len(logged - answered))
    assert all(r.received >= stop_at for r in not_taken), "a request failed before the shutdown began"
    assert resumed.snapshot() and not _failures(resumed.snapshot()), restarted.tail() if restarted else ""
