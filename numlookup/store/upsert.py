"""An ``INSERT … ON CONFLICT`` statement in the database's own dialect (SQLite or PostgreSQL).

Why a function: the PostgreSQL dialect's module (its catalogue, its types) is
imported only by a server that talks to PostgreSQL; importing it with every
module that upserts was a twentieth of a second of a SQLite server's start.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Table

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert as PostgresqlInsert
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert

# The dialects whose INSERT takes ON CONFLICT; any other database gets the callers' plain SQL.
UPSERT_DIALECTS = ("sqlite", "postgresql")


def upsert(dialect: str, table: Table) -> SqliteInsert | PostgresqlInsert:
    """``INSERT INTO table`` with ``on_conflict_do_update``/``_nothing`` and ``excluded``, for ``dialect``."""
    if dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table)
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    raise ValueError(f"no ON CONFLICT in the {dialect} dialect")
