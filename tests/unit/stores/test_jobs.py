"""Retrain jobs (``stores/jobs.py``) on a real control database, SQLite and PostgreSQL: one active
job per project whoever asks, a claim is a compare-and-set, a runner that stops heartbeating is
failed after the lease and its project released, and a reaped runner cannot write over the verdict."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.support.control_db import control_databases

from mlops.errors import JobResult
from mlops.stores.jobs import LINE_CHARS, LOG_LINES, JobStore


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with control_databases(request.param, tmp_path) as make:
        yield make()


@pytest.fixture
def store(url: str) -> Iterator[JobStore]:
    jobs = JobStore(url)
    yield jobs
    jobs.dispose()


def test_one_active_job_per_project_across_stores(url: str) -> None:
    """Ten submits from ten threads over five stores (as many processes' engines): one job."""
    stores = [JobStore(url) for _ in range(5)]
    try:
        with ThreadPoolExecutor(10) as pool:
            answers = list(
                pool.map(lambda i: stores[i % 5].submit("iris", lease_s=30, held=False), range(10))
            )
        assert len({job.id for job, _ in answers}) == 1
        assert sum(created for _, created in answers) == 1
        job = answers[0][0]
        assert job.state == "queued" and job.heartbeat_at is None and job.runner is None
        other, created = stores[0].submit("readmission", lease_s=30, held=False)
        assert created and other.id != job.id  # another project is independent
        assert stores[1].active("iris") == stores[2].get(job.id) == stores[3].latest("iris")
    finally:
        for s in stores:
            s.dispose()


def test_claim_is_a_compare_and_set(store: JobStore) -> None:
    queued, _ = store.submit("iris", lease_s=30, held=False)
    claimed = store.claim("host:1", pid=11)
    assert claimed is not None and claimed.id == queued.id
    assert (claimed.state, claimed.runner, claimed.pid) == ("running", "host:1", 11)
    assert claimed.heartbeat_at is not None and claimed.started_at is not None
    assert store.claim("host:2") is None  # taken: nothing left for a second runner
    assert store.claim("host:2", job_id=queued.id) is None
    assert store.submit("iris", lease_s=30, held=False)[1] is False  # still single-flight


def test_a_held_job_runs_at_once_and_its_local_runner_claims_it_by_id(store: JobStore) -> None:
    job, created = store.submit("iris", lease_s=30, held=True)
    assert created and job.state == "running" and job.runner is None and job.heartbeat_at is not None
    assert store.claim("worker:1") is None  # an external worker takes only queued jobs
    time.sleep(1.0)  # older than the lease below, until held again
    assert store.hold(job.id)  # the service holds it while its runner starts up: not stale
    assert store.reap(lease_s=0.9) == []
    mine = store.claim("local:7", pid=7, job_id=job.id)
    assert mine is not None and mine.runner == "local:7"
    assert not store.hold(job.id)  # claimed: the runner's heartbeat counts now


def test_finish_writes_the_outcome_and_frees_the_project(store: JobStore) -> None:
    job, _ = store.submit("iris", lease_s=30, held=False)
    store.claim("r")
    lines = [f"line {i} " + "x" * 1000 for i in range(LOG_LINES + 20)]
    assert store.heartbeat(job.id, "r", lines[:3])
    assert store.get(job.id).log_tail == [line[:LINE_CHARS] for line in lines[:3]]
    result = JobResult(ok=True, outputs={"model": {"version": "4"}, "promotion": {"outcome": "kept"}})
    done = store.finish(job.id, "r", result, lines)
    assert done is not None and (done.state, done.model_version) == ("succeeded", "4")
    assert done.promotion == {"outcome": "kept"} and done.finished_at is not None
    assert len(done.log_tail) == LOG_LINES and done.log_tail[-1] == lines[-1][:LINE_CHARS]
    assert store.active("iris") is None
    assert not store.heartbeat(job.id, "r")  # finished: not the runner's any more
    again, created = store.submit("iris", lease_s=30, held=False)
    assert created and again.id != job.id


def test_a_failed_training_keeps_its_error_and_reasons(store: JobStore) -> None:
    job, _ = store.submit("iris", lease_s=30, held=True)
    store.claim("r", job_id=job.id)
    error = {"type": "GateFailed", "message": "model gate failed", "reasons": ["f1 0.4 < 0.8"]}
    failed = store.finish(job.id, "r", JobResult(ok=False, error=error), ["boom"])
    assert failed is not None and failed.state == "failed" and failed.model_version is None
    assert failed.error is not None and failed.error.splitlines() == ["model gate failed", "  - f1 0.4 < 0.8"]
    assert failed.log_tail == ["boom"]


def test_a_runner_without_heartbeat_is_reaped_and_the_next_submit_starts_anew(store: JobStore) -> None:
    job, _ = store.submit("iris", lease_s=30, held=False)
    store.claim("dead:1")
    assert store.reap(lease_s=30) == []  # alive: nothing stale
    time.sleep(0.3)  # the lease below is shorter than this: not a timed assertion, a stale heartbeat
    reaped = store.reap(lease_s=0.1)
    assert [j.id for j in reaped] == [job.id] and reaped[0].state == "failed"
    assert "runner dead:1 lost: no heartbeat" in (reaped[0].error or "")
    assert store.active("iris") is None
    # the dead runner comes back: its heartbeat and its outcome are refused, the verdict stands
    assert not store.heartbeat(job.id, "dead:1")
    assert store.finish(job.id, "dead:1", JobResult(ok=True, outputs={}), []) is None
    assert store.get(job.id).state == "failed"


def test_submit_reaps_a_stale_job_first(store: JobStore) -> None:
    """A local runner that never started: the service's own hold lapses and the next request wins."""
    stale, _ = store.submit("iris", lease_s=30, held=True)
    time.sleep(0.3)
    fresh, created = store.submit("iris", lease_s=0.1, held=True)
    assert created and fresh.id != stale.id
    assert store.get(stale.id).state == "failed"
    assert "never started" in (store.get(stale.id).error or "")


def test_a_queued_job_waits_for_a_worker_without_a_lease(store: JobStore) -> None:
    job, _ = store.submit("iris", lease_s=30, held=False)
    time.sleep(0.2)
    assert store.reap(lease_s=0.05) == [] and store.get(job.id).state == "queued"


def test_fail_only_an_unclaimed_job_or_ones_own(store: JobStore) -> None:
    job, _ = store.submit("iris", lease_s=30, held=True)
    store.claim("r", job_id=job.id)
    assert store.fail(job.id, "could not start") is None  # claimed: only its runner may fail it
    assert store.fail(job.id, "runner stopped", runner="other") is None
    failed = store.fail(job.id, "runner stopped", runner="r")
    assert failed is not None and failed.error == "runner stopped" and store.active("iris") is None
