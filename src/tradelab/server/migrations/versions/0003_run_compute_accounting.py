"""run compute accounting: reserved budget, per-attempt cost, idle tracking, preemptions, GPU type, cost cap

- ``reserved``: what the active attempt may still cost at worst (hourly price × remaining wall time); counted
  against the budgets beside ``cost`` so concurrent launches never overshoot a cap;
- ``attempt_cost``: what the active attempt has cost so far (``cost`` holds every attempt's);
- ``active_at``: the last heartbeat that showed work (CPU or GPU busy), for the idle timeout;
- ``preemptions``: how often an interruptible pod of the run was taken away (those attempts are free retries);
- ``gpu_type`` and ``max_cost``: what the run was launched on and the most it may cost;
- ``start_lease`` and ``start_lease_at``: which worker may start the claimed run, and since when (a worker
  that died before starting it is taken over once the lease is stale, by one worker only).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("reserved", sa.Float(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("attempt_cost", sa.Float(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("active_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("preemptions", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("gpu_type", sa.String(64), nullable=True))
        batch.add_column(sa.Column("max_cost", sa.Float(), nullable=True))
        batch.add_column(sa.Column("start_lease", sa.String(64), nullable=True))
        batch.add_column(sa.Column("start_lease_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        for column in (
            "start_lease_at",
            "start_lease",
            "max_cost",
            "gpu_type",
            "preemptions",
            "active_at",
            "attempt_cost",
            "reserved",
        ):
            batch.drop_column(column)
