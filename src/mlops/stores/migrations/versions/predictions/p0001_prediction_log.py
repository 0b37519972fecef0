"""predictions: the prediction log, its feedback and the drift results (adopts 117f35d tables and rows).

Revision ID: p0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from mlops.stores.migrations.helpers import create_or_adopt

revision: str = "p0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("predictions",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    create_or_adopt(
        "predictions",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("project", sa.String(100), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(50), nullable=False),
        sa.Column("runtime", sa.String(20), nullable=False),
        sa.Column("inputs", sa.Text, nullable=False),
        sa.Column("prediction", sa.Integer, nullable=False),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("probabilities", sa.Text, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        indexes=("at", "project"),
    )
    create_or_adopt(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("project", sa.String(100), nullable=False),
        sa.Column("true_label", sa.Integer, nullable=False),
        sa.Column("correct", sa.Boolean, nullable=False),
        indexes=("request_id",),
    )
    create_or_adopt(
        "drift_results",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("project", sa.String(100), nullable=False),
        sa.Column("model_version", sa.String(50), nullable=False),
        sa.Column("reference_hash", sa.String(128), nullable=False),
        sa.Column("current_rows", sa.Integer, nullable=False),
        sa.Column("share", sa.Float, nullable=False),
        sa.Column("detected", sa.Boolean, nullable=False),
        sa.Column("features", sa.Text, nullable=False),
        sa.Column("report_path", sa.Text, nullable=False),
        indexes=("at", "project"),
    )


def downgrade() -> None:
    for table in ("drift_results", "feedback", "predictions"):
        op.drop_table(table)
