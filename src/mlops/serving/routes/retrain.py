"""Retraining over HTTP (admin key): record a single-flight job for a runner; read its state."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import JSONResponse

from mlops.serving.deps import JobsDep, SettingsDep
from mlops.serving.problems import problems
from mlops.serving.schemas import RetrainJob
from mlops.serving.security import ADMIN_ERRORS, AdminKey
from mlops.settings import Settings
from mlops.stores.jobs import Job

router = APIRouter(tags=["retrain"], dependencies=[AdminKey], responses=ADMIN_ERRORS)


@router.post(
    "/retrain",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RetrainJob,
    summary="Record a retrain job for a runner; while one is queued or running, it is returned instead",
)
async def retrain(jobs: JobsDep, settings: SettingsDep) -> JSONResponse:
    job, created = await jobs.submit()
    return JSONResponse(
        _shown(job, settings),
        status_code=status.HTTP_202_ACCEPTED,
        headers={"X-Job-Created": str(created).lower(), "Location": f"/retrain/{job.id}"},
    )


@router.get(
    "/retrain/{job_id}",
    response_model=RetrainJob,
    summary="A retrain job's state",
    responses=problems({404: "No such job"}),
)
async def retrain_status(job_id: str, jobs: JobsDep, settings: SettingsDep) -> RetrainJob:
    job = await jobs.get(job_id)
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
