"""The one engine factory for the project's own tables (audit log, prediction log, drift results).

SQLite files get their folder created, a 5 s lock timeout and WAL (readers such as drift and
lineage never block the writer; ``synchronous=NORMAL``: no fsync per batch). Server databases get
``pool_pre_ping`` and a 3 s connect timeout, so an outage surfaces in seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL; None for other databases and for ``:memory:``."""
    if not url.startswith("sqlite:///"):
        return None
    path = url.removeprefix("sqlite:///").partition("?")[0]
    return None if path in {"", ":memory:"} else Path(path)


def create_engine(url: str, **kwargs: Any) -> sa.Engine:
    """An engine for any SQLAlchemy URL with this project's connection defaults (``kwargs`` win)."""
    if url.startswith("sqlite"):
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {"timeout": 5})
        engine = sa.create_engine(url, **kwargs)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    kwargs.setdefault("connect_args", _connect_timeout(url))
    return sa.create_engine(url, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _connect_timeout(url: str) -> dict[str, Any]:
    return {"connect_timeout": 3} if url.startswith(("postgresql", "mysql")) else {}
