"""Registry of use cases. Modules are imported lazily so `mlops --help` stays fast."""

from __future__ import annotations

import importlib

from mlops.errors import UsageError
from mlops.spec import DataGate, Feature, ModelGate, ProjectSpec

PROJECTS: dict[str, str] = {
    "iris": "mlops.projects.iris",
    "readmission": "mlops.projects.readmission",
}

__all__ = ["PROJECTS", "DataGate", "Feature", "ModelGate", "ProjectSpec", "get_project"]


def get_project(name: str) -> ProjectSpec:
    try:
        module = PROJECTS[name]
    except KeyError:
        raise UsageError(
            f"unknown project {name!r}", hint=f"choose one of: {', '.join(sorted(PROJECTS))}"
        ) from None
    spec: ProjectSpec = importlib.import_module(module).SPEC
    return spec
