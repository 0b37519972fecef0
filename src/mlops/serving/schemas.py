"""Request and response models, generated from the use-case spec (a new use case needs no new code)."""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model

from mlops.projects import get_project
from mlops.spec import Feature, ProjectSpec


def _field(f: Feature) -> tuple[Any, Any]:
    """Strict types: a string, a boolean or a float for an integer feature is a 422, never coerced."""
    if f.kind == "numeric" and f.integer:
        kind: Any = Annotated[int, Field(strict=True, ge=f.minimum, le=f.maximum)]
    elif f.kind == "numeric":
        kind = Annotated[float, Field(strict=True, ge=f.minimum, le=f.maximum, allow_inf_nan=False)]
    elif f.categories:
        kind = Literal[tuple(f.categories)]
    else:
        kind = Annotated[str, Field(max_length=200)]
    if f.nullable:
        return (kind | None, Field(None, description=f.description or None))
    return (kind, Field(..., description=f.description or None))


@cache
def row_model(project: str) -> type[BaseModel]:
    return build_row_model(get_project(project))


def build_row_model(spec: ProjectSpec) -> type[BaseModel]:
    """One field per feature of the spec, with its type, range, categories and nullability."""
    fields: dict[str, Any] = {f.name: _field(f) for f in spec.features}
    model: type[BaseModel] = create_model(
        f"{spec.name.title()}Features",
        __config__=ConfigDict(extra="forbid", json_schema_extra={"examples": [spec.example]}),
        **fields,
    )
    return model


@cache
def batch_model(project: str) -> type[BaseModel]:
    row = row_model(project)
    model: type[BaseModel] = create_model(
        f"{project.title()}Batch",
        __config__=ConfigDict(extra="forbid"),
        rows=(list[row], Field(..., min_length=1)),  # type: ignore[valid-type]
    )
    return model


class Prediction(BaseModel):
    prediction: int = Field(description="Class id, as existing clients expect.")
    label: str
    probabilities: dict[str, float]
    model_version: str
    request_id: str


class BatchPrediction(BaseModel):
    predictions: list[Prediction]
    model_version: str


class ModelInfo(BaseModel):
    name: str
    alias: str
    version: str
    mlflow_run_id: str
    metrics: dict[str, float]
    trained_at: str
    runtime: Literal["onnx", "native"]
    threshold: float | None = None


class Feedback(BaseModel):
    """The body of ``POST /feedback``; ``feedback_model`` narrows ``true_label`` to the project's labels."""

    model_config = ConfigDict(extra="forbid")
    request_id: str = Field(min_length=1, max_length=100)
    true_label: int | str = Field(description="Class id or class name.")


def _not_a_boolean(value: Any) -> Any:
    """JSON's ``true`` is not the class id 1 (Python's ``True == 1`` would let it through the enum)."""
    if isinstance(value, bool):
        raise ValueError("a class id or a class name, not a boolean")
    return value


@cache
def feedback_model(project: str) -> type[Feedback]:
    return build_feedback_model(get_project(project))


def build_feedback_model(spec: ProjectSpec) -> type[Feedback]:
    """``Feedback`` whose ``true_label`` is one of the spec's class ids or class names: the published
    schema lists exactly the labels the service accepts (an enum), anything else is a 422."""
    labels = (*range(len(spec.class_names)), *spec.class_names)
    description = "Class id or class name: " + ", ".join(
        f"{i} = {name}" for i, name in enumerate(spec.class_names)
    )
    label: Any = Annotated[Literal[labels], BeforeValidator(_not_a_boolean)]
    model: type[Feedback] = create_model(
        "Feedback",
        __base__=Feedback,
        __doc__="The true label of a logged prediction, by the prediction's request id.",
        true_label=(label, Field(description=description)),
    )
    return model


class FeedbackResult(BaseModel):
    request_id: str
    model_version: str = Field(description="The version that answered the request.")
    correct: bool
    live_accuracy: float | None = Field(description="That version's share of labelled requests right.")
    labelled: int = Field(description="Labelled requests of that version (one label per request).")


class RetrainJob(BaseModel):
    job_id: str
    state: Literal["running", "succeeded", "failed"]
    project: str
    started_at: str
    finished_at: str | None = None
    model_version: str | None = None
    promotion: dict[str, Any] | None = None
    log_tail: list[str] = []
    error: str | None = None
