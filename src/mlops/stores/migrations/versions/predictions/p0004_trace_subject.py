"""predictions: the request's OpenTelemetry trace id, and the keyed hash of its subject key (erasure).

Revision ID: p0004
Revises: p0003
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "p0004"
down_revision: str | Sequence[str] | None = "p0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("trace_id", sa.String(32)))
        batch.add_column(sa.Column("subject_hash", sa.String(64)))
    op.create_index("ix_predictions_subject_hash", "predictions", ["subject_hash"])


def downgrade() -> None:
    op.drop_index("ix_predictions_subject_hash", table_name="predictions")
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("subject_hash")
        batch.drop_column("trace_id")
