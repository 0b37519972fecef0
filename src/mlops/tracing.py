"""OpenTelemetry tracing of the service and the pipeline steps (issue 14, in progress)."""

from __future__ import annotations
