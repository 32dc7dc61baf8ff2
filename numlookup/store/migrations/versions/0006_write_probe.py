"""One row that readiness probes rewrite: a node that cannot commit it cannot charge either.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "write_probe",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.bulk_insert(table, [{"id": 1, "written_at": datetime.now(UTC)}])


def downgrade() -> None:
    op.drop_table("write_probe")
