"""covering index for metric series reads

Reading one run's metric (``WHERE run_id = ? AND key = ? ORDER BY step``) touched one heap page per point
with the plain ``(run_id, key, step)`` index. With the value in the index the read is index-only.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_metric_points_series", table_name="metric_points")
    if op.get_bind().dialect.name == "postgresql":
        op.create_index(
            "ix_metric_points_series", "metric_points", ["run_id", "key", "step", "id"], postgresql_include=["value"]
        )
    else:
        op.create_index("ix_metric_points_series", "metric_points", ["run_id", "key", "step", "id", "value"])


def downgrade() -> None:
    op.drop_index("ix_metric_points_series", table_name="metric_points")
    op.create_index("ix_metric_points_series", "metric_points", ["run_id", "key", "step"])
