"""Retraining over HTTP (admin key): record a single-flight job for a runner; read its state."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, TypeVar

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import JSONResponse

from mlops.serving.deps import JobsDep, SettingsDep
from mlops.serving.problems import problems
from mlops.serving.schemas import RetrainJob
from mlops.serving.security import ADMIN_ERRORS, AdminKey
from mlops.settings import Settings
from mlops.stores.audit import is_outage
from mlops.stores.jobs import Job

router = APIRouter(tags=["retrain"], dependencies=[AdminKey], responses=ADMIN_ERRORS)
UNAVAILABLE = problems({503: "The control database (where jobs live) is unreachable: retry later"})
T = TypeVar("T")


async def _jobs_call(call: Awaitable[T]) -> T:
    """A job-store call; the control database being down is a 503 with ``Retry-After``, not a 500."""
    try:
        return await call
    except Exception as exc:
        if not is_outage(exc):
            raise
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the control database is unreachable: no retrain job can be recorded or read now",
            headers={"Retry-After": "5"},
        ) from exc


@router.post(
    "/retrain",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RetrainJob,
    summary="Record a retrain job for a runner; while one is queued or running, it is returned instead",
    responses=UNAVAILABLE,
)
async def retrain(jobs: JobsDep, settings: SettingsDep) -> JSONResponse:
    job, created = await _jobs_call(jobs.submit())
    return JSONResponse(
        _shown(job, settings),
        status_code=status.HTTP_202_ACCEPTED,
        headers={"X-Job-Created": str(created).lower(), "Location": f"/retrain/{job.id}"},
    )


@router.get(
    "/retrain/{job_id}",
    response_model=RetrainJob,
    summary="A retrain job's state",
    responses=problems({404: "No such job"}) | UNAVAILABLE,
)
async def retrain_status(job_id: str, jobs: JobsDep, settings: SettingsDep) -> RetrainJob:
    job = await _jobs_call(jobs.get(job_id))
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no retrain job {job_id!r}")
    return RetrainJob(**_shown(job, settings))


def _shown(job: Job, settings: Settings) -> dict[str, Any]:
    """The job with secrets masked in its error and log tail: the pipeline's own errors quote the
    URLs it failed to reach, passwords included."""
    shown = job.as_dict()
    shown["log_tail"] = [settings.redact(line) for line in shown["log_tail"]]
    shown["error"] = shown["error"] and settings.redact(shown["error"])
    return shown
