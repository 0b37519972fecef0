"""One prediction on the command line: the row checked against the use case's schema, then scored by
the version that holds an alias through the same runtime as the service (ONNX when parity held)."""

from __future__ import annotations

from typing import Any

from mlops.errors import NotFound, UsageError
from mlops.projects import get_project
from mlops.settings import Settings


def validate_row(project: str, row: Any) -> dict[str, Any]:
    spec = get_project(project)
    if not isinstance(row, dict):
        raise UsageError("features must be a JSON object", hint=f"e.g. '{spec.example}'")
    missing = [f for f in spec.feature_names if f not in row]
    extra = [k for k in row if k not in spec.feature_names]
    if missing or extra:
        raise UsageError(
            "features do not match the model's schema",
            reasons=[*(f"missing field {m!r}" for m in missing), *(f"unknown field {e!r}" for e in extra)],
            hint=f"expected fields: {', '.join(spec.feature_names)}",
        )
    import pandas as pd

    from mlops.data.validation import schema_reasons

    reasons = schema_reasons(spec, pd.DataFrame([row]), with_target=False)
    if reasons:
        raise UsageError("invalid feature values", reasons=reasons)
    return row


def predict_from_registry(
    settings: Settings, project: str, row: Any, *, alias: str = "production"
) -> dict[str, Any]:
    """One prediction by the version that holds ``alias``, loaded and scored as the service does."""
    validate_row(project, row)
    spec = get_project(project)
    from mlops import runtime
    from mlops.registry import Registry

    registry = Registry(settings, project)
    version = registry.alias_version(alias)
    if version is None:
        raise NotFound(f"no model holds alias {alias!r} of {registry.name!r}", hint="run `mlops train` first")
    model = runtime.load(settings, project, version)
    classes, proba = model.predict_rows([row])
    cls = int(classes[0])
    return {
        "prediction": cls,
        "label": spec.class_names[cls],
        "probabilities": {n: float(p) for n, p in zip(spec.class_names, proba[0], strict=True)},
        "model_uri": f"models:/{registry.name}@{alias}",
        "model_version": version,
        "runtime": model.runtime,
    }
