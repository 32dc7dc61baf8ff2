"""The sqlite3 read ``numlookup lookup`` starts with: only a database at the schema's head, else the full path."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from numlookup.store import make_engine, upgrade
from numlookup.store.migrate import head_revision
from numlookup.store.sqlite_read import HEAD_REVISION, open_at_head, sqlite_file


def test_head_revision_is_alembics(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}", create=True)
    try:
        assert head_revision() == HEAD_REVISION
    finally:
        engine.dispose()


def test_only_a_database_at_head_is_read(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'numlookup.db'}"
    assert open_at_head(url) is None  # no file: nothing is created
    assert not (tmp_path / "numlookup.db").exists()
    engine = make_engine(url, create=True)
    upgrade(engine)
    engine.dispose()
    conn = open_at_head(url)
    assert conn is not None
    conn.close()
    with sqlite3.connect(tmp_path / "numlookup.db") as writer:
        writer.execute("UPDATE alembic_version SET version_num = '0007'")
    assert open_at_head(url) is None  # an older schema: SQLAlchemy migrates it first


def test_other_urls_take_the_full_path() -> None:
    assert sqlite_file("postgresql://u@h/db") is None
    assert sqlite_file("sqlite+pysqlite:////tmp/x.db") is None
    assert sqlite_file("sqlite:////tmp/x.db?mode=ro") is None
    assert sqlite_file("sqlite:///relative.db") is None
    assert sqlite_file("sqlite:////tmp/x.db") == Path("/tmp/x.db")
