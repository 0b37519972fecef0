"""SQLAlchemy engines for the project's own tables (audit log, prediction log, drift results)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa


def create_engine(url: str, **kwargs: Any) -> sa.Engine:
    """An engine for any SQLAlchemy URL; for a SQLite file its folder is created first."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(url, **kwargs)
