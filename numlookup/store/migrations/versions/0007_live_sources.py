"""Provider kinds: per-source daily usage and cost; cached answers that name networks or say only porting.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "source_usage",
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("source", sa.String(80), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("queries", sa.BigInteger, nullable=False),
        sa.Column("numbers", sa.BigInteger, nullable=False),
        sa.Column("answered", sa.BigInteger, nullable=False),
        sa.Column("failures", sa.BigInteger, nullable=False),
        sa.Column("cost_micros", sa.BigInteger, nullable=False),
        sa.Column("credits_micros", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("day", "source", name="pk_source_usage"),
    )
    with op.batch_alter_table("live_cache") as table:
        table.alter_column("reachable", existing_type=sa.Boolean, nullable=True)
        table.add_column(sa.Column("invalid", sa.Boolean, nullable=False, server_default=sa.false()))
        table.add_column(sa.Column("ported_known", sa.Boolean, nullable=True))
        table.add_column(sa.Column("ported_name", sa.String(120), nullable=True))
        table.add_column(sa.Column("ported_country", sa.String(4), nullable=True))
        table.add_column(sa.Column("roaming_name", sa.String(120), nullable=True))
        table.add_column(sa.Column("roaming_country", sa.String(4), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("live_cache") as table:
        for column in ("roaming_country", "roaming_name", "ported_country", "ported_name", "ported_known", "invalid"):
            table.drop_column(column)
        table.alter_column("reachable", existing_type=sa.Boolean, nullable=False)
    op.drop_table("source_usage")
