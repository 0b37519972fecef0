"""control: rollouts (shadow and canary, one active per project) and leases (one leader among workers).

Revision ID: c0003
Revises: c0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c0003"
down_revision: str | Sequence[str] | None = "c0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project", sa.String(100), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("candidate", sa.String(50), nullable=False),
        sa.Column("baseline", sa.String(50)),
        sa.Column("mode", sa.String(20), nullable=False),
        sa.Column("percent", sa.Float, nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("incident", sa.Text, nullable=False),
        sa.Column("active_key", sa.String(100)),
        sa.UniqueConstraint("active_key", name="uq_rollouts_active_key"),
    )
    op.create_index("ix_rollouts_project", "rollouts", ["project"])
    op.create_table(
        "leases",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_index("ix_rollouts_project", table_name="rollouts")
    op.drop_table("rollouts")
