"""`mlops ui`: the ZenML dashboard and the MLflow UI on the project's own state (issue 14, in progress)."""

from __future__ import annotations
