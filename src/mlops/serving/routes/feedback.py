"""Ground truth for a logged prediction (admin key) -> live accuracy of the version that answered.

The body is the project's own (``schemas.feedback_model``): its schema lists the class ids and names
the service accepts, so the published contract and the server agree (an empty or unknown label is a
422 from the schema, not a surprise). The router is made per project, as the prediction routes are.
A second label for the same request replaces the first (the store keeps one per request).
"""

from __future__ import annotations

import asyncio
from functools import cache

from fastapi import APIRouter, HTTPException, status
from fastapi.exceptions import RequestValidationError

from mlops.serving import instruments
from mlops.serving.deps import LogDep, ModelDep
from mlops.serving.problems import NOT_JSON, problems
from mlops.serving.schemas import Feedback, FeedbackResult, feedback_model
from mlops.serving.security import ADMIN_ERRORS, AdminKey

ERRORS = problems(
    NOT_JSON
    | {
        404: "Unknown request id",
        503: "No model loaded yet, or the prediction log is unavailable",
    }
)


def class_id(true_label: int | str, names: list[str]) -> int:
    """The class id of a label given by name or id; a 422 like any other invalid field otherwise
    (the project's schema refuses those already: this is the route's own check of what it stores)."""
    if isinstance(true_label, str) and not true_label.isdigit():
        if true_label not in names:
            raise _invalid_label(true_label, f"unknown class; one of {names}")
        return names.index(true_label)
    label = int(true_label)
    if not 0 <= label < len(names):
        raise _invalid_label(true_label, f"class id out of range 0..{len(names) - 1}")
    return label


def _invalid_label(value: int | str, msg: str) -> RequestValidationError:
    error = {"type": "value_error", "loc": ("body", "true_label"), "msg": msg, "input": value}
    return RequestValidationError([error])


async def feedback(body: Feedback, log: LogDep, model: ModelDep) -> FeedbackResult:
    label = class_id(body.true_label, list(model.spec.class_names))
    try:
        result = await asyncio.to_thread(log.record_feedback, body.request_id, model.spec.name, label)
    except Exception as exc:  # the log database is down: say so, do not 500
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "prediction log unavailable") from exc
    if result is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown request id {body.request_id!r}")
    project = model.spec.name
    instruments.live_evidence(project, result.version, result.version_correct, result.version_labelled)
    return FeedbackResult(
        request_id=body.request_id,
        model_version=result.version,
        correct=result.correct,
        live_accuracy=result.accuracy,
        labelled=result.version_labelled,
    )


@cache
def router_for(project: str) -> APIRouter:
    """``POST /feedback`` taking ``project``'s labels (one router per project, made once)."""
    body_model = feedback_model(project)
    router = APIRouter(tags=["feedback"], dependencies=[AdminKey], responses=ADMIN_ERRORS)

    async def endpoint(body: Feedback, log: LogDep, model: ModelDep) -> FeedbackResult:
        return await feedback(body, log, model)

    endpoint.__annotations__["body"] = body_model  # the model FastAPI reads and documents the body by
    router.add_api_route(
        "/feedback",
        endpoint,
        methods=["POST"],
        response_model=FeedbackResult,
        summary="The true label of a prediction, by request id",
        responses=ERRORS,
    )
    return router
