"""The console's data: charges by answer class, the usage rollup and its watermark, nodes, the session key.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_CLASSES = ("offline", "cached", "live", "invalid")


def _counters() -> list[sa.Column[int]]:
    return [
        sa.Column("requests", sa.BigInteger, nullable=False),
        *(sa.Column(name, sa.BigInteger, nullable=False) for name in _CLASSES),
        sa.Column("credits", sa.BigInteger, nullable=False),
    ]


def upgrade() -> None:
    # Plain ADD COLUMN (nullable, no default) on both backends: no rewrite of the
    # ledger's rows, and no batch rebuild of a table others point to on SQLite.
    for name in _CLASSES:
        op.add_column("ledger", sa.Column(name, sa.Integer, nullable=True))
    op.create_table(
        "usage_rollup",
        sa.Column("account_id", sa.Integer, sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        *_counters(),
        sa.PrimaryKeyConstraint("account_id", "hour", name="pk_usage_rollup"),
    )
    op.create_table(
        "traffic_rollup",
        sa.Column("hour", sa.DateTime(timezone=True), primary_key=True),
        *_counters(),
    )
    op.create_table(
        "usage_rollup_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("last_id", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "usage_rollup_gaps",
        sa.Column("ledger_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "nodes",
        sa.Column("node_id", sa.String(120), primary_key=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ready", sa.Boolean, nullable=False),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("requests", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_nodes_last_seen", "nodes", ["last_seen"])
    op.create_table(
        "console_keys",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key", sa.LargeBinary(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    # The rollup is derived from the ledger and the rest is rebuilt at start: nothing owed is lost.
    op.drop_table("console_keys")
    op.drop_index("ix_nodes_last_seen", table_name="nodes")
    op.drop_table("nodes")
    op.drop_table("usage_rollup_gaps")
    op.drop_table("usage_rollup_state")
    op.drop_table("traffic_rollup")
    op.drop_table("usage_rollup")
    for name in reversed(_CLASSES):
        if op.get_context().dialect.name == "sqlite":
            op.execute(f"ALTER TABLE ledger DROP COLUMN {name}")  # SQLite 3.35+: no table rebuild
        else:
            op.drop_column("ledger", name)
