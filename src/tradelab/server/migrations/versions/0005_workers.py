"""workers: each live reconciler checks in every tick with its backend and the hourly prices it knows

``/api/compute/backends`` reports a backend available while a worker of it checks in, and a launch whose
``max_cost`` cannot cover one attempt at those prices is refused at once.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workers",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("backend", sa.String(32), nullable=False, index=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("prices", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("workers")
