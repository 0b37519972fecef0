"""predictions: one label per request (a second label replaces the first).

Existing duplicates are removed keeping the latest label of each request (latest ``at``, then the
highest id), then ``ix_feedback_request_id`` becomes a unique index, which the store's upsert
(``ON CONFLICT (request_id)``) relies on.

Revision ID: p0002
Revises: p0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "p0002"
down_revision: str | Sequence[str] | None = "p0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_feedback_request_id"

# A row goes when the same request has a later label (same time: a higher id). The derived table
# lets MySQL/MariaDB delete from the table the subquery reads.
DEDUPLICATE = """
DELETE FROM feedback WHERE id IN (
    SELECT id FROM (
        SELECT earlier.id FROM feedback AS earlier JOIN feedback AS later
          ON later.request_id = earlier.request_id
         AND (later.at > earlier.at OR (later.at = earlier.at AND later.id > earlier.id))
    ) AS superseded
)
"""


def upgrade() -> None:
    op.execute(DEDUPLICATE)
    op.drop_index(INDEX, table_name="feedback")
    op.create_index(INDEX, "feedback", ["request_id"], unique=True)


def downgrade() -> None:
    op.drop_index(INDEX, table_name="feedback")
    op.create_index(INDEX, "feedback", ["request_id"])
