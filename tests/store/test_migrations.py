from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect

from numlookup.store import make_engine, upgrade
from numlookup.store.migrate import current_revision, head_revision
from numlookup.store.tables import metadata
from tests.support import database_url


def test_migrations_build_the_schema_the_code_uses(tmp_path: Path) -> None:
    engine = make_engine(database_url(tmp_path / "db", migrated=False))
    assert current_revision(engine) is None
    upgrade(engine)
    upgrade(engine)  # idempotent
    assert current_revision(engine) == head_revision(engine)
    inspector = inspect(engine)
    for table in metadata.sorted_tables:
        assert {c["name"] for c in inspector.get_columns(table.name)} == {c.name for c in table.columns}
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()
