"""Fresh control databases for the audit and alias-lock tests, on SQLite or the machine's PostgreSQL
(127.0.0.1:5432, user postgres, trust auth: one new database per test, dropped afterwards; missing,
it skips locally and FAILS under ``CI=true``), and the tampering a guard-less attacker can do."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa

from mlops.stores import chain, migrate
from mlops.stores.tables import audit_log

PG = "postgresql://postgres@127.0.0.1:5432"


def admin(statement: str) -> None:
    """Run ``statement`` on the server's ``postgres`` database (CREATE/DROP DATABASE)."""
    engine = sa.create_engine(f"{PG}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def require_postgres() -> None:
    try:
        admin("SELECT 1")
    except sa.exc.OperationalError as exc:
        message = f"PostgreSQL not reachable on 127.0.0.1:5432: {str(exc.orig).strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)  # CI must run these, never skip them
        pytest.skip(message)


@contextmanager
def control_databases(backend: str, root: Path) -> Iterator[Callable[[], str]]:
    """``make()``: the URL of a new control database at head on ``backend``."""
    created: list[str] = []

    def make() -> str:
        if backend == "sqlite":
            url = f"sqlite:///{root / f'control-{uuid.uuid4().hex[:8]}.db'}"
        else:
            name = f"mlops_test_{uuid.uuid4().hex[:12]}"
            admin(f"CREATE DATABASE {name}")
            created.append(name)
            url = f"{PG}/{name}"
        migrate.upgrade(url, ["control"])
        return url

    if backend == "postgresql":
        require_postgres()
    try:
        yield make
    finally:
        for name in created:
            admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def execute(url: str, *statements: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def drop_guards(url: str) -> None:
    """What the database owner can do: the append-only triggers gone."""
    if url.startswith("sqlite"):
        execute(url, "DROP TRIGGER audit_log_no_update", "DROP TRIGGER audit_log_no_delete")
    else:
        execute(
            url,
            "DROP TRIGGER audit_log_no_change ON audit_log",
            "DROP TRIGGER audit_log_no_truncate ON audit_log",
        )


def rewrite_chain(url: str, *, edit_seq: int, reason: str, anchor: bool) -> None:
    """Edit one row and recompute every hash after it, as an attacker with the code but not the key
    would; ``anchor``: also point the anchor at the new head (its HMAC cannot be recomputed)."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.text("UPDATE audit_log SET reason = :r WHERE seq = :s"), {"r": reason, "s": edit_seq}
            )
            rows = conn.execute(sa.select(audit_log).order_by(audit_log.c.seq)).mappings().all()
            prev = chain.GENESIS
            for row in rows:
                data = dict(row) | {"prev_hash": prev}
                digest = chain.row_hash(data)
                conn.execute(
                    sa.text("UPDATE audit_log SET prev_hash = :p, hash = :h WHERE seq = :s"),
                    {"p": prev, "h": digest, "s": row["seq"]},
                )
                prev = digest
            if anchor:
                conn.execute(sa.text("UPDATE audit_anchor SET hash = :h"), {"h": prev})
    finally:
        engine.dispose()


# audit rows as a 117f35d (pre-chain) log holds them: the c0002 backfill's input
LEGACY_AUDIT_ROWS = [
    "INSERT INTO audit_log (at, actor, action, project, model_name, alias, from_version, to_version, "
    "decision, reason, details) VALUES ('2026-11-30 10:00:00.000000', 'ana', 'promote', 'iris', "
    "'iris-classifier', 'production', NULL, '1', 'promoted', 'first model', '{\"f1\": 0.9}')",
    "INSERT INTO audit_log (at, actor, action, project, model_name, alias, from_version, to_version, "
    "decision, reason, details) VALUES ('2026-11-30 11:00:00.000000', 'bo', 'promote', 'iris', "
    "'iris-classifier', 'production', '1', '2', 'kept', 'tie keeps the champion', '{}')",
    "INSERT INTO audit_log (at, actor, action, project, model_name, alias, from_version, to_version, "
    "decision, reason, details) VALUES ('2026-11-30 12:00:00.000000', 'ci', 'train', 'readmission', "
    "'readmission-classifier', NULL, NULL, NULL, 'failed', 'killed', '{\"pid\": 7}')",
]
