"""Bulk jobs: the jobs, their chunks and results, and the credits accounts hold for them.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A plain ADD COLUMN on both backends: a batch rebuild of ``accounts`` on SQLite
    # would drop the table its children (allow-lists, ledger) point to.
    op.add_column("accounts", sa.Column("reserved", sa.BigInteger, nullable=False, server_default="0"))
    if op.get_context().dialect.name != "sqlite":
        op.create_check_constraint(
            "ck_accounts_reserved_within_balance", "accounts", "reserved >= 0 AND reserved <= balance"
        )
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("public_id", sa.String(40), nullable=False, unique=True),
        sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id", ondelete="RESTRICT"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("friendly_name", sa.String(200), nullable=True),
        sa.Column("callback_url", sa.Text, nullable=True),
        sa.Column("max_age", sa.Float, nullable=True),
        sa.Column("style", sa.String(16), nullable=False),
        sa.Column("price_offline", sa.BigInteger, nullable=False),
        sa.Column("price_cache", sa.BigInteger, nullable=False),
        sa.Column("price_live", sa.BigInteger, nullable=False),
        sa.Column("total_count", sa.BigInteger, nullable=False),
        sa.Column("processed_count", sa.BigInteger, nullable=False),
        sa.Column("valid_count", sa.BigInteger, nullable=False),
        sa.Column("invalid_count", sa.BigInteger, nullable=False),
        sa.Column("duplicate_count", sa.BigInteger, nullable=False),
        sa.Column("reserved", sa.BigInteger, nullable=False),
        sa.Column("charged", sa.BigInteger, nullable=False),
        sa.Column("chunks_total", sa.Integer, nullable=False),
        sa.Column("chunks_done", sa.Integer, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_jobs_account_id_id", "jobs", ["account_id", "id"])
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.create_table(
        "job_chunks",
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("routed", sa.Integer, nullable=False),
        sa.Column("state", sa.String(8), nullable=False),
        sa.Column("reserve", sa.BigInteger, nullable=False),
        sa.Column("charged", sa.BigInteger, nullable=True),
        sa.Column("firsts", sa.LargeBinary, nullable=True),
        sa.Column("lease_owner", sa.String(120), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("prepared", sa.LargeBinary, nullable=False),
    )
    op.create_index("ix_job_chunks_state_job_id", "job_chunks", ["state", "job_id"])
    op.create_table(
        "job_results",
        sa.Column("job_id", sa.Integer, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    # Jobs go, and with them every reservation: the balances stay as the ledger has them.
    op.drop_table("job_results")
    op.drop_table("job_chunks")
    op.drop_table("jobs")
    if op.get_context().dialect.name == "sqlite":
        op.execute("ALTER TABLE accounts DROP COLUMN reserved")  # SQLite 3.35+: no table rebuild
    else:
        op.drop_constraint("ck_accounts_reserved_within_balance", "accounts", type_="check")
        op.drop_column("accounts", "reserved")
