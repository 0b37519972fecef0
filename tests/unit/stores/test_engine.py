"""The one engine factory: SQLite files get their folder, WAL and a lock timeout; servers fail fast."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from mlops.stores.engine import create_engine, sqlite_path


def test_a_sqlite_file_gets_its_folder_wal_and_normal_sync(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "x.db"
    engine = create_engine(f"sqlite:///{target}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    engine.dispose()
    assert target.is_file()


def _connect_params(engine: sa.Engine) -> dict[str, Any]:
    """What the engine would hand the driver (captured, then the connection is refused)."""
    captured: dict[str, Any] = {}

    def capture(_dialect: Any, _record: Any, _args: Any, params: dict[str, Any]) -> None:
        captured.update(params)
        raise ConnectionRefusedError("captured")

    sa.event.listen(engine, "do_connect", capture)
    with pytest.raises(Exception, match="captured"):
        engine.connect()
    return captured


def test_server_databases_fail_fast_and_ping_their_pool() -> None:
    engine = create_engine("postgresql://nobody@127.0.0.1:1/none")
    assert engine.pool._pre_ping is True  # type: ignore[attr-defined]
    assert _connect_params(engine)["connect_timeout"] == 3
    explicit = create_engine("postgresql://nobody@127.0.0.1:1/none", pool_size=2, connect_args={})
    assert explicit.pool.size() == 2 and "connect_timeout" not in _connect_params(explicit)


def test_sqlite_waits_for_a_lock_five_seconds(tmp_path: Path) -> None:
    assert _connect_params(create_engine(f"sqlite:///{tmp_path}/x.db"))["timeout"] == 5


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:////abs/a.db", Path("/abs/a.db")),
        ("sqlite:///rel/a.db?timeout=3", Path("rel/a.db")),
        ("sqlite:///:memory:", None),
        ("sqlite://", None),
        ("postgresql://u@h/db", None),
    ],
)
def test_sqlite_path(url: str, path: Path | None) -> None:
    assert sqlite_path(url) == path
