"""Health data: retention purge, erasure, backup and restore of every store (issue 14, in progress)."""

from __future__ import annotations
