"""Storage: SQLAlchemy Core tables, the engine and Alembic migrations (SQLite and PostgreSQL)."""

from numlookup.store.engine import NoDatabase, make_engine, shown_url, write_transaction
from numlookup.store.migrate import upgrade

__all__ = ["NoDatabase", "make_engine", "shown_url", "upgrade", "write_transaction"]
