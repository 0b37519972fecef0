"""Building blocks of revisions: adopt a table created before migrations, the audit log's guards.

The append-only guards live here because every revision that rebuilds ``audit_log`` must put them
back: Alembic's SQLite batch mode (``op.batch_alter_table``) copies the table into a new one and
drops the old one, and its triggers with it, silently. Such a revision calls ``create_audit_guards()``
after its batch block, in the same revision.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from alembic import op

logger = logging.getLogger("alembic.runtime.migration")

MESSAGE = "audit_log is append-only"


def create_or_adopt(name: str, *columns: sa.Column[Any], indexes: tuple[str, ...] = ()) -> None:
    """Create table ``name``, or adopt it if it already exists with these columns (a database made
    before migrations existed: its rows are kept). ``indexes``: columns indexed as ``ix_<name>_<column>``."""
    inspector = sa.inspect(op.get_bind())
    if inspector.has_table(name):
        found = {c["name"] for c in inspector.get_columns(name)}
        missing = [c.name for c in columns if c.name not in found]
        if missing:
            raise RuntimeError(
                f"table {name} exists but lacks columns {missing}: not a table this project made; "
                "move it aside or point the setting at another database"
            )
        present = {ix["name"] for ix in inspector.get_indexes(name)}
    else:
        op.create_table(name, *columns)
        present = set()
    for column in indexes:
        index = f"ix_{name}_{column}"
        if index not in present:
            op.create_index(index, name, [column])


def create_audit_guards() -> None:
    """UPDATE and DELETE on ``audit_log`` refused on SQLite and Postgres; TRUNCATE too on Postgres."""
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for event in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS audit_log_no_{event}")
            op.execute(
                f"CREATE TRIGGER audit_log_no_{event} BEFORE {event.upper()} ON audit_log "
                f"BEGIN SELECT RAISE(ABORT, '{MESSAGE}'); END"
            )
    elif dialect == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION mlops_audit_log_append_only() RETURNS trigger "
            f"LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '{MESSAGE} (% refused)', TG_OP "
            "USING ERRCODE = 'insufficient_privilege'; END $$"
        )
        for trigger, events in (
            ("audit_log_no_change", "UPDATE OR DELETE"),
            ("audit_log_no_truncate", "TRUNCATE"),
        ):
            op.execute(f"DROP TRIGGER IF EXISTS {trigger} ON audit_log")
            # FOR EACH STATEMENT: refused even when no row matches (and TRUNCATE has no rows)
            op.execute(
                f"CREATE TRIGGER {trigger} BEFORE {events} ON audit_log "
                "FOR EACH STATEMENT EXECUTE FUNCTION mlops_audit_log_append_only()"
            )
    else:
        logger.warning("audit_log: no append-only guard for %s; only SQLite and Postgres have one", dialect)


def drop_audit_guards() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_change ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS mlops_audit_log_append_only()")
