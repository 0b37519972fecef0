"""predictions: an index on feedback's time, for the retention purge's sweep of old labels.

Revision ID: p0005
Revises: p0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "p0005"
down_revision: str | Sequence[str] | None = "p0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_feedback_at", "feedback", ["at"])


def downgrade() -> None:
    op.drop_index("ix_feedback_at", table_name="feedback")
