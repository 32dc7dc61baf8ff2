"""Usage per day and account, and the hourly rollup indexed by hour: top accounts without reading every hour.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_daily",
        sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("day", sa.DateTime(timezone=True), nullable=False),
        sa.Column("requests", sa.BigInteger, nullable=False),
        *(sa.Column(name, sa.BigInteger, nullable=False) for name in ("offline", "cached", "live", "invalid")),
        sa.Column("credits", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("account_id", "day", name="pk_usage_daily"),
    )
    op.create_index("ix_usage_daily_day", "usage_daily", ["day"])
    op.create_index("ix_usage_rollup_hour", "usage_rollup", ["hour"])
    # Filled from the hourly rollup, which holds every charge folded so far: the watermark stands for both.
    day = (
        "substr(hour, 1, 10) || ' 00:00:00.000000'"
        if op.get_context().dialect.name == "sqlite"
        else "timezone('UTC', date_trunc('day', timezone('UTC', hour)))"
    )
    op.execute(
        "INSERT INTO usage_daily (account_id, day, requests, offline, cached, live, invalid, credits) "
        f"SELECT account_id, {day}, sum(requests), sum(offline), sum(cached), sum(live), sum(invalid), sum(credits) "
        f"FROM usage_rollup GROUP BY account_id, {day}"
    )


def downgrade() -> None:
    op.drop_index("ix_usage_rollup_hour", table_name="usage_rollup")
    op.drop_index("ix_usage_daily_day", table_name="usage_daily")
    op.drop_table("usage_daily")
