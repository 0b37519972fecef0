"""control: retrain jobs (one active per project; claimed, heartbeated and finished by a runner).

Revision ID: c0004
Revises: c0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c0004"
down_revision: str | Sequence[str] | None = "c0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("runner", sa.String(200)),
        sa.Column("pid", sa.Integer),
        sa.Column("model_version", sa.String(50)),
        sa.Column("result", sa.Text),
        sa.Column("error", sa.Text),
        sa.Column("log_tail", sa.Text, nullable=False),
        sa.Column("active_key", sa.String(100)),
        sa.UniqueConstraint("active_key", name="uq_jobs_active_key"),
    )
    op.create_index("ix_jobs_project", "jobs", ["project"])


def downgrade() -> None:
    op.drop_index("ix_jobs_project", table_name="jobs")
    op.drop_table("jobs")
