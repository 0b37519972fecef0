"""Locks and write transactions on the control database: the audit chain and every alias move
serialize here, across processes and hosts, with no lock server besides the database itself.

Postgres: ``pg_advisory_xact_lock`` inside a transaction, never a session lock (a pooled connection
would carry a session lock into its next user); it ends with the transaction, even when the process
dies. SQLite: ``BEGIN IMMEDIATE`` takes the database's one write lock for the whole block (WAL keeps
readers unblocked; the engine's busy timeout bounds the wait). pysqlite begins transactions itself,
lazily and never IMMEDIATE, so the engine gets SQLAlchemy's recipe: the driver's autobegin off, and
``BEGIN`` emitted by us (``transaction_control``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from mlops.errors import AliasConflict

_IMMEDIATE = "mlops_sqlite_immediate"
LOCK_TIMEOUT_S = 30  # Postgres: how long a promotion waits for another one's alias lock


def _no_autobegin(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None


def _begin(conn: sa.Connection) -> None:
    immediate = conn.get_execution_options().get(_IMMEDIATE)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def transaction_control(engine: sa.Engine) -> sa.Engine:
    """Let ``write_transaction`` take SQLite's write lock at BEGIN (a no-op on other databases)."""
    if engine.dialect.name == "sqlite" and not sa.event.contains(engine, "begin", _begin):
        sa.event.listen(engine, "connect", _no_autobegin)
        sa.event.listen(engine, "begin", _begin)
    return engine


@contextmanager
def write_transaction(engine: sa.Engine) -> Iterator[sa.Connection]:
    """One transaction that holds SQLite's write lock from its first statement (Postgres: a plain
    transaction; take advisory locks inside it). Commits on success, rolls back on error."""
    if engine.dialect.name == "sqlite" and not sa.event.contains(engine, "begin", _begin):
        raise RuntimeError("write_transaction needs an engine prepared by transaction_control()")
    with engine.connect() as conn:
        conn.execution_options(**{_IMMEDIATE: True})
        conn.begin()
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()


def pg_xact_lock(conn: sa.Connection, key: int | str) -> None:
    """Postgres: the transaction-scoped advisory lock ``key`` (an int, or a string through
    ``hashtext``), waiting at most LOCK_TIMEOUT_S. No-op elsewhere (SQLite's lock is the transaction)."""
    if conn.dialect.name != "postgresql":
        return
    conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT_S}s'")
    if isinstance(key, int):
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
    else:
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": key})


class AliasLock:
    """The held lock of one alias: ``conn`` is the transaction every write of the move goes through."""

    def __init__(self, engine: sa.Engine, conn: sa.Connection, key: str) -> None:
        self.engine = engine
        self.conn = conn
        self.key = key
        self.released_meanwhile = False  # SQLite: ``durable`` let another writer in for a moment

    def durable(self, statement: sa.Executable) -> sa.CursorResult[Any]:
        """Execute ``statement`` so that it survives a crash later in the block (an intent row).

        Postgres: in its own short transaction (the advisory lock stays held by ``conn``). SQLite:
        commit ``conn`` and take the write lock again: another writer may get in between, which
        ``released_meanwhile`` tells the caller (re-read what it decided on)."""
        if self.conn.dialect.name == "sqlite":
            result = self.conn.execute(statement)
            self.conn.commit()
            self.conn.begin()
            self.released_meanwhile = True
            return result
        with write_transaction(self.engine) as other:
            return other.execute(statement)


@contextmanager
def alias_lock(engine: sa.Engine, key: str) -> Iterator[AliasLock]:
    """Serialize every move of one alias (``key``: ``<model>@<alias>``) across processes."""
    try:
        with write_transaction(engine) as conn:
            pg_xact_lock(conn, f"mlops.alias:{key}")
            yield AliasLock(engine, conn, key)
    except sa.exc.OperationalError as exc:
        text = str(exc.orig or exc).lower()
        if "database is locked" in text or "lock timeout" in text:
            raise AliasConflict(
                f"alias {key} is being moved by another promotion (lock not free); refused",
                hint="retry when it has finished",
            ) from None
        raise
