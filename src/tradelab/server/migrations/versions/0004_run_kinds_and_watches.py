"""run kinds and watches: a run trains (the default), sweeps, evaluates an ensemble or re-evaluates a run

- ``runs.kind``: ``train``, ``sweep``, ``ensemble`` or ``evaluate`` (what the run's agent executes);
- ``runs.params``: what the kind needs (a sweep's trial count, an ensemble's members, the run an evaluation
  scores and its window);
- ``watches``: runs re-evaluated on the newest data every ``every_s`` seconds over the last ``window_days``
  days, by an ``evaluate`` run the worker queues.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="train"))
        batch.add_column(sa.Column("params", sa.JSON(), nullable=True))
    op.create_table(
        "watches",
        sa.Column("run_id", sa.Integer(), sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("window_days", sa.Integer(), nullable=False),
        sa.Column("every_s", sa.Float(), nullable=False),
        sa.Column("backend", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_queued_at", sa.DateTime(timezone=True), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("watches")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("params")
        batch.drop_column("kind")
