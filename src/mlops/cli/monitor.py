"""`mlops monitor`: the monitoring loop of the embedded default (issue 14, in progress)."""

from __future__ import annotations
