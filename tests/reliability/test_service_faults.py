"""The service under load while things go wrong around it: real uvicorn with 2 workers.

A corrupt version moved into the alias behind governance's back; the MLflow server hung, SIGKILLed
and brought back; the service itself stopped and restarted mid-load; 10 concurrent /retrain requests.
Each test records its figures (tests/reliability/conftest.py).
"""

from __future__ import annotations

import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from mlops.errors import PromotionRefused
from mlops.governance.promote import manual_promote
from mlops.projects import get_project
from mlops.registry import Registry
from mlops.settings import Settings
from tests.integration.processes import (
    ADMIN_KEY,
    LoadGenerator,
    failed,
    free_port,
    fresh_settings,
    latency_ms,
    metric_samples,
    mlflow_server,
    promote_new_version,
    service_env,
    start_service,
    swap_counts,
)
from tests.support.training import train_register_promote

POLL_S = "0.3"
PACE_S = 0.05  # ~160 req/s over 8 connections where a server or a training job needs the 2 cores too


def test_a_corrupt_version_in_the_alias_is_rejected_by_every_worker(
    tmp_path, figures, corrupt_version
) -> None:
    """Governance refuses a corrupt version (both paths: tests/unit/test_registry_promotion.py); then
    the alias is moved behind its back, straight in MLflow, and the service must refuse it too."""
    settings = fresh_settings(tmp_path)
    train_register_promote(settings, "iris")
    registry = Registry(settings, "iris")
    bad = train_register_promote(settings, "iris", seed=11)["model"]["version"]
    if registry.alias_version("production") != "1":
        registry.move_alias("production", expected=bad, new="1")
    corrupt_version(settings, "iris", bad)
    spec = get_project("iris")
    proc, base = start_service(settings.home, tmp_path, workers=2, MLOPS_POLL_INTERVAL_S=POLL_S)
    try:
        with LoadGenerator(base, threads=8) as load:
            assert load.wait_for(lambda rs: len(rs) >= 100, timeout=60), proc.tail()
            with pytest.raises(PromotionRefused, match="failed its checks") as refused:
                manual_promote(settings, spec, bad, to="production", reason="hotfix", approver="ana")
            assert registry.alias_version("production") == "1", refused.value
            registry.move_alias("production", expected="1", new=bad)
            load.wait_for(lambda _: swap_counts(base).get("rejected", 0) >= 2, timeout=30)
            time.sleep(3 * float(POLL_S))  # a window for a worker that would reject it again
            rejected = swap_counts(base).get("rejected", 0)
            ready = httpx.get(f"{base}/ready").json()
            serving = [s.labels["version"] for s in metric_samples(base, "mlops_model_info") if s.value == 1]
            good = promote_new_version(settings, 12)
            assert load.converged(good, after=time.monotonic()), proc.tail()
        results = load.snapshot()
    finally:
        proc.stop()
    errors = failed(results)
    figures(
        requests=len(results),
        errors=len(errors),
        governance_refused=1,
        workers_rejecting=rejected,
        p99_ms=latency_ms(results, 0.99),
    )
    assert rejected == 2, f"expected each of the 2 workers to reject v{bad} once\n{proc.tail()}"
    assert bad in ready["rejected_versions"] and ready["model_version"] == "1", ready
    assert serving == ["1"], serving
    assert not errors, f"{len(errors)} failed, e.g. {errors[:3]}"
    assert bad not in {r.version for r in results}


def _registry_reachable(base: str) -> bool:
    """What one worker's /ready says about the registry."""
    return bool(httpx.get(f"{base}/ready").json()["registry_reachable"])


def test_mlflow_server_hung_then_killed_while_serving_and_brought_back(tmp_path, figures) -> None:
    """The MLflow server first freezes (SIGSTOP: connections hang, the way a partition looks), then is
    SIGKILLed; predictions flow throughout, the outage is reported within seconds, and the service
    recovers by itself when a new server opens the same store on the same port."""
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    env = service_env(tmp_path / "state", MLOPS_TRACKING_URI=uri)
    mlflow = mlflow_server(tmp_path, port, env)
    proc = None
    try:
        settings = fresh_settings(tmp_path, tracking_uri=uri)
        train_register_promote(settings, "iris")
        proc, base = start_service(
            settings.home, tmp_path, workers=2, MLOPS_TRACKING_URI=uri, MLOPS_POLL_INTERVAL_S=POLL_S
        )
        with LoadGenerator(base, threads=8, interval=PACE_S) as load:
            assert load.wait_for(lambda rs: len(rs) >= 100, timeout=60), proc.tail()
            mlflow.freeze()
            outage = time.monotonic()
            # the MLflow client alone would take ~50 s (timeouts x retries) to give up
            assert load.wait_for(lambda _: not _registry_reachable(base), timeout=15), proc.tail()
            hung_reported_s = time.monotonic() - outage
            mlflow.kill()  # SIGKILL to the process group: no goodbye
            assert load.wait_for(lambda _: metric_samples(base, "mlops_registry_reachable")[0].value == 0, 15)
            mlflow = mlflow_server(tmp_path, port, env)  # same port, same SQLite backend
            during = len([r for r in load.snapshot() if r.sent > outage])
            back = time.monotonic()
            assert load.wait_for(  # livemin over the workers: 1 once every worker reached it
                lambda _: metric_samples(base, "mlops_registry_reachable")[0].value == 1, timeout=60
            ), proc.tail()
            recovered_s = time.monotonic() - back
            assert _registry_reachable(base)
            version = promote_new_version(settings, 11)
            assert load.converged(version, after=time.monotonic()), proc.tail()
        results = load.snapshot()
    finally:
        if proc is not None:
            proc.stop()
        mlflow.stop()
    errors = failed(results)
    figures(
        requests=len(results),
        errors=len(errors),
        served_while_registry_down=during,
        hung_reported_s=round(hung_reported_s, 1),
        recovered_s=round(recovered_s, 1),
        p99_ms=latency_ms(results, 0.99),
    )
    assert not errors, f"{len(errors)} failed, e.g. {errors[:3]}"
    assert during > 0


def _logged_ids(home: Path) -> set[str]:
    """Request ids in the prediction log (src/mlops/stores/predictions.py, SQLite by default)."""
    with sqlite3.connect(Settings(home=home).state_dir / "predictions.db") as db:
        return {row[0] for row in db.execute("SELECT request_id FROM predictions")}


def test_restart_under_load_drains_requests_and_the_log(tmp_path, figures) -> None:
    """SIGTERM mid-load: what the server took in is answered and logged; nothing else is lost."""
    settings = fresh_settings(tmp_path)
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
        with LoadGenerator(base2, threads=16) as resumed:
            assert resumed.wait_for(lambda rs: len(rs) >= 500, timeout=30), restarted.tail()
        after = resumed.snapshot()
    finally:
        for p in (proc, restarted):
            if p is not None:
                p.stop()
    answered = {r.request_id for r in before if r.status == 200}
    http_errors = [r for r in before if r.status not in (200, 0)]
    refused = [r for r in before if r.status == 0 and "ConnectError" in r.error]  # nobody listening
    lost = [r for r in before if r.status == 0 and "ConnectError" not in r.error]  # taken, unanswered
    figures(
        requests=len(before),
        answered=len(answered),
        logged=len(logged),
        refused_while_down=len(refused),
        http_errors=len(http_errors),
        lost=len(lost),
        in_flight_at_sigterm=len([r for r in before if r.sent <= stop_at < r.received]),
        p99_ms=latency_ms(before, 0.99),
        after_restart=len(after),
        errors_after_restart=len(failed(after)),
    )
    assert not http_errors and not lost, (http_errors[:3], lost[:3])
    assert all(r.sent >= stop_at for r in refused), "a connection was refused before the shutdown"
    # Every answer was logged, and nothing was logged that the client did not get: the server
    # answered everything it took in, and drained its queue before exiting.
    assert answered == logged, (len(answered - logged), len(logged - answered))
    assert not failed(after), failed(after)[:3]


def test_ten_concurrent_retrains_under_load_run_one_job(tmp_path, figures) -> None:
    """Single-flight across both workers while they serve: one job, one new version, no failed request."""
    settings = fresh_settings(tmp_path)
    train_register_promote(settings, "iris")
    registry = Registry(settings, "iris")
    proc, base = start_service(settings.home, tmp_path, workers=2, MLOPS_POLL_INTERVAL_S=POLL_S)
    admin = {"X-API-Key": ADMIN_KEY}
    try:
        with LoadGenerator(base, threads=8, max_seconds=600, interval=PACE_S) as load:
            assert load.wait_for(lambda rs: len(rs) >= 100, timeout=60), proc.tail()
            # fresh connections, so both workers take some of the 10
            with ThreadPoolExecutor(10) as pool:
                responses = list(pool.map(lambda _: httpx.post(f"{base}/retrain", headers=admin), range(10)))
            assert {r.status_code for r in responses} == {202}, [r.text for r in responses]
            job_ids = {r.json()["job_id"] for r in responses}
            created = sum(r.headers["x-job-created"] == "true" for r in responses)
            job_id = responses[0].json()["job_id"]
            deadline = time.monotonic() + 300
            while (job := httpx.get(f"{base}/retrain/{job_id}", headers=admin).json())["state"] == "running":
                assert time.monotonic() < deadline, job
                time.sleep(0.5)
            expected = "2" if (job["promotion"] or {}).get("outcome") == "promoted" else "1"
            converged = load.converged(expected, after=time.monotonic())
        results = load.snapshot()
    finally:
        proc.stop()
    versions = sorted(v.version for v in registry.versions())
    errors = failed(results)
    figures(
        retrain_requests=10,
        jobs=len(job_ids),
        new_versions=len(versions) - 1,
        requests=len(results),
        errors=len(errors),
        p99_ms=latency_ms(results, 0.99),
    )
    assert len(job_ids) == 1 and created == 1, (job_ids, created)
    assert job["state"] == "succeeded", job
    assert versions == ["1", "2"] and job["model_version"] == "2", (versions, job)
    assert converged, proc.tail()
    assert not errors, f"{len(errors)} failed, e.g. {errors[:3]}"
