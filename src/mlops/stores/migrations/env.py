"""Alembic's environment for the project's databases; configured by ``mlops.stores.migrate``."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context

from mlops.stores.engine import create_engine
from mlops.stores.migrate import VERSION_TABLE
from mlops.stores.tables import METADATA

config = context.config
databases: list[str] = config.attributes.get("databases") or list(METADATA)
target = sa.MetaData()
for database in databases:
    for table in METADATA[database].tables.values():
        table.to_metadata(target)
ours = set(target.tables)


def include_name(name: str | None, type_: str, _parent: Any) -> bool:
    """Only our tables: other tools (MLflow, Optuna) may share the database."""
    return type_ != "table" or name in ours


def run(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target,
        version_table=VERSION_TABLE,
        include_name=include_name,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters by copying the table
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if context.is_offline_mode():
    raise SystemExit("offline (--sql) migrations are not supported: run `mlops db upgrade`")
if connection is not None:
    run(connection)
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.begin() as conn:
            run(conn)
    finally:
        engine.dispose()
