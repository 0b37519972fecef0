"""Alembic, configured in code: upgrade, inspect and check the project's databases.

One script location (``migrations/``) with one branch per database (``control``, ``predictions``)
and one version table, ``mlops_alembic_version``: other tools' Alembic tables (Optuna's, MLflow's)
can share a database, and when both settings name the same database its version table simply holds
both branches' heads. No ``alembic.ini`` is needed at run time.

Embedded SQLite files are upgraded automatically when a store first uses them (under a file lock, so
the service's workers never race); server databases are upgraded explicitly by ``mlops db upgrade``
(an init step in compose and Kubernetes) and a store refuses, with that hint, a database whose
schema is older than this code's.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from mlops.errors import MlopsError
from mlops.settings import mask_url
from mlops.stores.engine import create_engine, sqlite_path
from mlops.stores.tables import METADATA

if TYPE_CHECKING:
    from alembic.config import Config

    from mlops.settings import Settings

VERSION_TABLE = "mlops_alembic_version"
SCRIPT_LOCATION = Path(__file__).with_name("migrations")
_PG_LOCK_KEY = 0x6D6C6F7073  # pg_advisory_xact_lock: one migrator at a time per Postgres database


class SchemaNotReady(MlopsError):
    exit_code = 6


@dataclass
class Upgrade:
    url: str
    databases: list[str]
    before: list[str]
    after: list[str]

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def as_dict(self) -> dict[str, Any]:
        return {
            "databases": self.databases,
            "url": mask_url(self.url),
            "before": self.before,
            "after": self.after,
            "changed": self.changed,
        }


def alembic_config(
    url: str, databases: Sequence[str], connection: sa.Connection | None = None, *, only: bool = False
) -> Config:
    """Alembic's configuration for ``databases`` (branch names) living at ``url``.

    Every branch's revisions are known (a shared database's version table holds both heads);
    ``only`` limits them to ``databases``, for ``alembic check``, which wants every known head applied.
    """
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    cfg.set_main_option("version_path_separator", "os")
    folders = databases if only else list(METADATA)
    cfg.set_main_option(
        "version_locations", os.pathsep.join(str(SCRIPT_LOCATION / "versions" / name) for name in folders)
    )
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["databases"] = list(databases)
    cfg.attributes["connection"] = connection
    return cfg


def script_heads(databases: Sequence[str]) -> list[str]:
    """The head revision of each branch in ``databases``, in that order."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://", databases))
    return [script.get_revision(f"{database}@head").revision for database in databases]


def current_heads(connection: sa.Connection) -> list[str]:
    """The revisions recorded in the database's ``mlops_alembic_version`` (empty: never upgraded)."""
    from alembic.runtime.migration import MigrationContext

    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return sorted(context.get_current_heads())


def upgrade(url: str, databases: Sequence[str], *, engine: sa.Engine | None = None) -> Upgrade:
    """Upgrade the branches ``databases`` at ``url`` to their heads; a no-op when already there."""
    from alembic import command

    own = engine is None
    eng = engine if engine is not None else create_engine(url)
    path = sqlite_path(url)
    try:
        with _file_lock(path), eng.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK_KEY})")
            before = current_heads(conn)
            if not _newer_release(before):  # a rolled-back release leaves a newer schema alone
                for database in databases:
                    command.upgrade(alembic_config(url, databases, conn), f"{database}@head")
            after = current_heads(conn)
    except sa.exc.OperationalError as exc:
        if not own:  # a store's first use: the caller handles an outage (the writer retries)
            raise
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise MlopsError(
            f"cannot migrate the {' + '.join(databases)} database at {mask_url(url)}: {reason}",
            hint="check that it is running and MLOPS_AUDIT_DB_URL / MLOPS_PREDICTION_LOG_URL",
        ) from None
    finally:
        if own:
            eng.dispose()
    return Upgrade(url, list(databases), before, after)


def upgrade_all(settings: Settings) -> list[Upgrade]:
    """Every configured database to head; two names for one database upgrade it once, both branches."""
    by_url: dict[str, list[str]] = {}
    for database, url in settings.databases.items():
        by_url.setdefault(url, []).append(database)
    return [upgrade(url, databases) for url, databases in by_url.items()]


def check(url: str, databases: Sequence[str]) -> None:
    """``alembic check``: raises when ``tables.py`` and the migrations disagree on this database."""
    from alembic import command

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            command.check(alembic_config(url, databases, conn, only=True))
    finally:
        engine.dispose()


_ready: set[tuple[str, str]] = set()
_ready_lock = threading.Lock()


def ensure_schema(engine: sa.Engine, database: str) -> None:
    """Called by a store before its first statement: SQLite is upgraded in place; a server database
    must already be at this code's head (or newer: migrations are expand-then-contract)."""
    key = (str(engine.url), database)
    if key in _ready:
        return
    with _ready_lock:
        if key in _ready:
            return
        url = engine.url.render_as_string(hide_password=False)
        if engine.dialect.name == "sqlite":
            upgrade(url, [database], engine=engine)
        else:
            _require_head(engine, database)
        if sqlite_path(url) is not None or engine.dialect.name != "sqlite":  # :memory: is per connection
            _ready.add(key)


def _newer_release(current: Sequence[str]) -> bool:
    """The database records a revision this code does not know (``current``: its heads): a newer
    release migrated it, and its migrations are expand-then-contract, so this code's statements
    still work there. Alembic would refuse to upgrade it ("Can't locate revision"): an older
    release's `mlops db upgrade` would fail, and its prediction-log shipper every insert."""
    return any(rev not in _known_revisions() for rev in current)


@functools.cache
def _known_revisions() -> frozenset[str]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://", list(METADATA)))
    return frozenset(rev.revision for rev in script.walk_revisions())


def _require_head(engine: sa.Engine, database: str) -> None:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://", [database]))
    head = script.get_revision(f"{database}@head").revision
    with engine.connect() as conn:
        current = current_heads(conn)
    if head in current or _newer_release(current):  # at head, or a newer release's
        return
    raise SchemaNotReady(
        f"the {database} database ({engine.url.render_as_string(hide_password=True)}) is not at "
        f"schema {head} (it has {', '.join(current) or 'no mlops tables'})",
        hint="run `mlops db upgrade` (an init step in compose and Kubernetes)",
    )


def _file_lock(path: Path | None) -> Any:
    if path is None or not path.parent.is_dir():  # no folder: connecting fails, as it should (FileLock
        return contextlib.nullcontext()  # would create the folder)
    from filelock import FileLock

    return FileLock(f"{path}.migrate.lock", timeout=60)
