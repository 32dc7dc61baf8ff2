"""Storage: SQLAlchemy Core tables, the engine and Alembic migrations (SQLite and PostgreSQL).

The names below are loaded on first use, not with the package, so that
``store.sqlite_read`` (``numlookup lookup``'s fast start) comes without SQLAlchemy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from numlookup.store.engine import NoDatabase, make_engine, shown_url, write_transaction
    from numlookup.store.migrate import upgrade

__all__ = ["NoDatabase", "make_engine", "shown_url", "upgrade", "write_transaction"]
_HOMES = {
    "NoDatabase": "engine",
    "make_engine": "engine",
    "shown_url": "engine",
    "write_transaction": "engine",
    "upgrade": "migrate",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
