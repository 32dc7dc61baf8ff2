"""A read-only look at a SQLite database with the standard library, for a command that must answer at once.

Why not SQLAlchemy: importing it (and Alembic, to know the schema's head) costs
over a second on a loaded machine, five times what ``numlookup lookup NUMBER``
should take in all. The one query that command needs (which dataset versions
are active) is read here with ``sqlite3``, and only from a database whose schema
is at :data:`HEAD_REVISION`; anything else (PostgreSQL, an older schema that
must be migrated first, a missing or unreadable file) gets None, and the caller
takes the full path through SQLAlchemy, which migrates or reports the error.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

# The newest migration's revision; tests/store/test_sqlite_read.py holds it equal to
# Alembic's head, so a new migration cannot leave it behind unnoticed (a stale value
# is only slow: the revision differs and the caller takes the SQLAlchemy path).
HEAD_REVISION = "0011"
_PREFIX = "sqlite:///"


def sqlite_file(url: str) -> Path | None:
    """The file of a plain ``sqlite:///ABSOLUTE`` URL (no driver, no query), else None."""
    if not url.startswith(_PREFIX) or "?" in url:
        return None
    path = Path(url[len(_PREFIX) :])
    return path if path.is_absolute() else None


def open_at_head(url: str) -> sqlite3.Connection | None:
    """A read-only connection to the SQLite database of ``url`` if its schema is at the head; else None."""
    path = sqlite_file(url)
    if path is None or not path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        conn.close()
        return None
    if row is None or row[0] != HEAD_REVISION:
        conn.close()
        return None
    return conn
