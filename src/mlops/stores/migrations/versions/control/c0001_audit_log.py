"""control: the audit log, append-only on SQLite and Postgres (adopts a 117f35d table and its rows).

Revision ID: c0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from mlops.stores.migrations.helpers import create_audit_guards, create_or_adopt, drop_audit_guards

revision: str = "c0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("control",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_or_adopt(
        "audit_log",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("project", sa.String(100), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("alias", sa.String(50)),
        sa.Column("from_version", sa.String(50)),
        sa.Column("to_version", sa.String(50)),
        sa.Column("decision", sa.String(50), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
    )
    create_audit_guards()


def downgrade() -> None:
    drop_audit_guards()
    op.drop_table("audit_log")
