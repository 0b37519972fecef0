"""Retraining over HTTP (admin key): single-flight jobs running the training pipeline."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import JSONResponse

from mlops.serving.deps import JobsDep
from mlops.serving.errors import problems
from mlops.serving.schemas import RetrainJob
from mlops.serving.security import ADMIN_ERRORS, AdminKey

router = APIRouter(tags=["retrain"], dependencies=[AdminKey], responses=ADMIN_ERRORS)


@router.post(
    "/retrain",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=RetrainJob,
    summary="Start the training pipeline; while a job runs, its id is returned instead",
)
async def retrain(jobs: JobsDep) -> JSONResponse:
    job, created = jobs.submit()
    return JSONResponse(
        job.as_dict(),
        status_code=status.HTTP_202_ACCEPTED,
        headers={"X-Job-Created": str(created).lower(), "Location": f"/retrain/{job.job_id}"},
    )


@router.get(
    "/retrain/{job_id}",
    response_model=RetrainJob,
    summary="A retrain job's state",
    responses=problems({404: "No such job"}),
)
async def retrain_status(job_id: str, jobs: JobsDep) -> RetrainJob:
    job = jobs.get(job_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no retrain job {job_id!r}")
    return RetrainJob(**job.as_dict())
