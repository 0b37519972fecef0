"""What the service's tests share: a valid iris row, the admin key the test settings carry, and a
reader of this process's Prometheus samples."""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY
from pydantic import SecretStr

EXAMPLE = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}
ADMIN = {"X-API-Key": "admin-test-key"}
# Settings of a service under test: the admin key above, a small batch limit.
SERVICE: dict[str, Any] = {"admin_api_key": SecretStr("admin-test-key"), "max_batch_rows": 50}


def sample(metric: str, **labels: str) -> float:
    """A metric's current value in this process (metrics are process-wide: compare deltas)."""
    return REGISTRY.get_sample_value(metric, labels) or 0.0
