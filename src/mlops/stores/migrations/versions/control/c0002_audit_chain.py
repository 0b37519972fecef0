"""control: the audit log's hash chain (seq, prev_hash, hash), its HMAC anchor, alias-move intents.

Existing rows are chained in id order, and the anchor is signed, so an upgraded log verifies. The
append-only guards are dropped for the backfill (the only UPDATE the log ever gets) and put back.

Revision ID: c0002
Revises: c0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from mlops.stores import chain
from mlops.stores.migrations.helpers import create_audit_guards, drop_audit_guards

revision: str = "c0002"
down_revision: str | Sequence[str] | None = "c0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_CONTENT = (
    "at",
    "actor",
    "action",
    "project",
    "model_name",
    "alias",
    "from_version",
    "to_version",
    "decision",
    "reason",
    "details",
)


def upgrade() -> None:
    op.create_table(
        "audit_anchor",
        sa.Column("chain", sa.String(50), primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("hmac", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "alias_intents",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("alias", sa.String(50), nullable=False),
        sa.Column("expected", sa.String(50)),
        sa.Column("new", sa.String(50), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("audit_seq", sa.Integer),
    )
    drop_audit_guards()
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("seq", sa.Integer))
        batch.add_column(sa.Column("prev_hash", sa.String(64)))
        batch.add_column(sa.Column("hash", sa.String(64)))
    _backfill()
    with op.batch_alter_table("audit_log") as batch:
        batch.alter_column("seq", existing_type=sa.Integer, nullable=False)
        batch.alter_column("prev_hash", existing_type=sa.String(64), nullable=False)
        batch.alter_column("hash", existing_type=sa.String(64), nullable=False)
        batch.create_unique_constraint("uq_audit_log_seq", ["seq"])
    create_audit_guards()  # after the batch block: SQLite's batch mode rebuilt the table without them


def _backfill() -> None:
    bind = op.get_bind()
    log = sa.table(
        "audit_log",
        sa.column("id", sa.Integer),
        sa.column("at", sa.DateTime(timezone=True)),
        *(sa.column(name, sa.Text) for name in _CONTENT[1:]),
        sa.column("seq", sa.Integer),
        sa.column("prev_hash", sa.String),
        sa.column("hash", sa.String),
    )
    rows = bind.execute(
        sa.select(log.c.id, *(log.c[name] for name in _CONTENT)).order_by(log.c.id)
    ).mappings()
    seq, prev = 0, chain.GENESIS
    for row in list(rows):
        seq += 1
        content = {name: row[name] for name in _CONTENT} | {"seq": seq, "prev_hash": prev}
        content["details"] = json.dumps(json.loads(row["details"] or "{}"), sort_keys=True)
        digest = chain.row_hash(content)
        bind.execute(log.update().where(log.c.id == row["id"]).values(seq=seq, prev_hash=prev, hash=digest))
        prev = digest
    if seq:  # sign the head: the key is that of the database's users (MLOPS_AUDIT_HMAC_KEY or the key file)
        key = chain.key_for(bind.engine.url.render_as_string(hide_password=False))
        anchor = sa.table(
            "audit_anchor",
            sa.column("chain", sa.String),
            sa.column("seq", sa.Integer),
            sa.column("hash", sa.String),
            sa.column("hmac", sa.String),
            sa.column("at", sa.DateTime(timezone=True)),
        )
        bind.execute(
            anchor.insert().values(
                chain=chain.CHAIN,
                seq=seq,
                hash=prev,
                hmac=chain.anchor_hmac(key, seq, prev),
                at=datetime.now(UTC),
            )
        )


def downgrade() -> None:
    drop_audit_guards()
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_constraint("uq_audit_log_seq", type_="unique")
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
        batch.drop_column("seq")
    create_audit_guards()
    op.drop_table("alias_intents")
    op.drop_table("audit_anchor")
