"""Retraining jobs and ground-truth feedback (admin key)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import JSONResponse

from mlops.serving import metrics
from mlops.serving.deps import JobsDep, LogDep, ModelDep
from mlops.serving.schemas import Feedback, FeedbackResult, RetrainJob
from mlops.serving.security import AdminKey

router = APIRouter(dependencies=[AdminKey])


@router.post(
    "/retrain",
    status_code=202,
    response_model=RetrainJob,
    tags=["retrain"],
    summary="Start the training pipeline (single-flight)",
)
async def retrain(jobs: JobsDep) -> JSONResponse:
    job, created = jobs.submit()
    body = job.as_dict()
    return JSONResponse(
        body, status_code=status.HTTP_202_ACCEPTED, headers={"X-Job-Created": str(created).lower()}
    )


@router.get("/retrain/{job_id}", response_model=RetrainJob, tags=["retrain"], summary="A retrain job's state")
async def retrain_status(job_id: str, jobs: JobsDep) -> RetrainJob:
    job = jobs.jobs.get(job_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no retrain job {job_id!r}")
    return RetrainJob(**job.as_dict())


@router.post(
    "/feedback", response_model=FeedbackResult, tags=["feedback"], summary="Ground truth for a prediction"
)
async def feedback(body: Feedback, log: LogDep, model: ModelDep) -> FeedbackResult:
    names = list(model.spec.class_names)
    if isinstance(body.true_label, str) and not body.true_label.isdigit():
        if body.true_label not in names:
            raise HTTPException(
                422, [{"loc": ["body", "true_label"], "msg": f"unknown class; one of {names}"}]
            )
        label = names.index(body.true_label)
    else:
        label = int(body.true_label)
        if not 0 <= label < len(names):
            raise HTTPException(
                422, [{"loc": ["body", "true_label"], "msg": f"class id out of range 0..{len(names) - 1}"}]
            )
    import asyncio

    result = await asyncio.to_thread(log.record_feedback, body.request_id, model.spec.name, label)
    if result is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown request id {body.request_id!r}")
    correct, accuracy = result
    metrics.FEEDBACK.inc()
    if accuracy is not None:
        metrics.LIVE_ACCURACY.set(accuracy)
    return FeedbackResult(request_id=body.request_id, correct=correct, live_accuracy=accuracy)
