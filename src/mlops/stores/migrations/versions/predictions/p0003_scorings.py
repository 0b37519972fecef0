"""predictions: scorings besides the answer (a shadow version's prediction, a canary candidate's failure);
an index on (project, model_version, at) of both tables for the rollouts' evidence windows.

Revision ID: p0003
Revises: p0002
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "p0003"
down_revision: str | Sequence[str] | None = "p0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "scorings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("project", sa.String(100), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(50), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("prediction", sa.Integer),
        sa.Column("label", sa.String(200)),
        sa.Column("probabilities", sa.Text),
        sa.Column("latency_ms", sa.Float),
        sa.Column("error", sa.Text),
        sa.UniqueConstraint("request_id", "model_version", name="uq_scorings_request_version"),
    )
    op.create_index("ix_scorings_request_id", "scorings", ["request_id"])
    op.create_index("ix_scorings_at", "scorings", ["at"])
    op.create_index("ix_scorings_pva", "scorings", ["project", "model_version", "at"])
    op.create_index("ix_predictions_pva", "predictions", ["project", "model_version", "at"])


def downgrade() -> None:
    op.drop_index("ix_predictions_pva", table_name="predictions")
    op.drop_index("ix_scorings_pva", table_name="scorings")
    op.drop_index("ix_scorings_at", table_name="scorings")
    op.drop_index("ix_scorings_request_id", table_name="scorings")
    op.drop_table("scorings")
