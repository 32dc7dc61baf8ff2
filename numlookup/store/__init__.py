"""Storage: SQLAlchemy Core tables, the engine and Alembic migrations (SQLite and PostgreSQL)."""

from numlookup.store.engine import make_engine, write_transaction
from numlookup.store.migrate import upgrade

__all__ = ["make_engine", "upgrade", "write_transaction"]
