"""The live-answer cache, shared by all workers.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "live_cache",
        sa.Column("number", sa.String(32), primary_key=True),
        sa.Column("source", sa.String(80), nullable=False),
        sa.Column("reachable", sa.Boolean, nullable=False),
        sa.Column("roaming", sa.Boolean, nullable=True),
        sa.Column("roaming_mccmnc", sa.String(6), nullable=True),
        sa.Column("roaming_gt", sa.String(32), nullable=True),
        sa.Column("ported_mccmnc", sa.String(6), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("network_checked_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_live_cache_network_checked_at", "live_cache", ["network_checked_at"])


def downgrade() -> None:
    op.drop_index("ix_live_cache_network_checked_at", table_name="live_cache")
    op.drop_table("live_cache")
