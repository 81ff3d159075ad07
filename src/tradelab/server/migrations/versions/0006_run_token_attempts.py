"""run token attempts: a run token is valid only for the attempt of its run it was issued for

A token of an attempt that ended (its pod terminated or preempted, its run queued again or final) is refused,
so a token read from a pod's environment cannot write to the run afterwards. Live run tokens are the current
attempt's (the worker revokes a run's earlier tokens when it issues one), so they get their run's attempt.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.add_column(sa.Column("attempt", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE tokens SET attempt = (SELECT runs.attempts FROM runs WHERE runs.id = tokens.run_id) "
        "WHERE role = 'run' AND revoked_at IS NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("tokens") as batch:
        batch.drop_column("attempt")
