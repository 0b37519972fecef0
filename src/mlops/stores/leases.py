"""Named leases in the control database: one holder at a time, for a while, with no lock server.

The rollout guard runs in every worker of every replica, and exactly one of them may act: the one
holding the lease ``rollout-guard:<project>``. ``acquire`` is a compare-and-set: it inserts the row
when there is none, and otherwise updates it only when the lease has expired or is already this
holder's (a renewal); the database's row lock (Postgres) or write lock (SQLite) decides a race, and
the loser's UPDATE matches no row. A holder that dies simply stops renewing: the lease lapses after
``ttl_s`` and another worker takes it. Time is the database server's clock on Postgres (every holder
compares against the same clock); SQLite is one machine's file, so its clock is the machine's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa

from mlops.stores.engine import create_engine
from mlops.stores.locks import transaction_control, write_transaction
from mlops.stores.migrate import ensure_schema
from mlops.stores.tables import leases

if TYPE_CHECKING:
    from mlops.settings import Settings


class LeaseStore:
    """The ``leases`` table of the control database."""

    def __init__(self, url: str, *, engine: sa.Engine | None = None) -> None:
        self.url = url
        self.engine = transaction_control(engine or create_engine(url))

    @classmethod
    def for_settings(cls, settings: Settings) -> LeaseStore:
        return cls(settings.audit_url)

    def _now(self, conn: sa.Connection) -> datetime:
        if conn.dialect.name == "postgresql":
            now = conn.execute(sa.text("SELECT now()")).scalar_one()
            return now if now.tzinfo else now.replace(tzinfo=UTC)
        return datetime.now(UTC)

    def acquire(self, name: str, holder: str, ttl_s: float) -> bool:
        """Take or renew ``name`` for ``holder`` until now + ``ttl_s``; False while another holds it."""
        if ttl_s <= 0:
            raise ValueError(f"a lease needs a positive ttl, got {ttl_s}")
        ensure_schema(self.engine, "control")
        with write_transaction(self.engine) as conn:
            now = self._now(conn)
            until = now + timedelta(seconds=ttl_s)
            taken = conn.execute(
                leases.update()
                .where(leases.c.name == name, sa.or_(leases.c.holder == holder, leases.c.expires_at < now))
                .values(holder=holder, expires_at=until)
            )
            if taken.rowcount:
                return True
            try:
                with conn.begin_nested():
                    conn.execute(leases.insert().values(name=name, holder=holder, expires_at=until))
            except sa.exc.IntegrityError:  # someone else holds it (the row exists, not expired)
                return False
            return True

    def release(self, name: str, holder: str) -> bool:
        """Give the lease up now (a clean shutdown: the next worker need not wait for it to lapse);
        False when ``holder`` did not hold it."""
        ensure_schema(self.engine, "control")
        with write_transaction(self.engine) as conn:
            gone = conn.execute(leases.delete().where(leases.c.name == name, leases.c.holder == holder))
        return bool(gone.rowcount)

    def holder(self, name: str) -> tuple[str, datetime] | None:
        """Who holds ``name`` and until when (expired or not); None when nobody took it."""
        ensure_schema(self.engine, "control")
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(leases.c.holder, leases.c.expires_at).where(leases.c.name == name)
            ).first()
        if row is None:
            return None
        until: datetime = row.expires_at
        return str(row.holder), until if until.tzinfo else until.replace(tzinfo=UTC)

    def dispose(self) -> None:
        self.engine.dispose()
