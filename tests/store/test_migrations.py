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
    assert current_revision(engine) == head_revision()
    inspector = inspect(engine)
    for table in metadata.sorted_tables:
        assert {c["name"] for c in inspector.get_columns(table.name)} == {c.name for c in table.columns}
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    engine.dispose()


def test_the_schema_check_reads_what_alembic_reads(tmp_path: Path) -> None:
    """``current_revision`` and ``head_revision`` spare the start Alembic's import; their answers are Alembic's."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from numlookup.store.migrate import _config, downgrade

    engine = make_engine(database_url(tmp_path / "db", migrated=False))
    assert head_revision() == ScriptDirectory.from_config(_config(engine)).get_current_head()
    upgrade(engine)
    downgrade(engine, "0007")
    for expected in ("0007", head_revision()):
        with engine.connect() as conn:
            assert current_revision(engine) == MigrationContext.configure(conn).get_current_revision() == expected
        upgrade(engine)
    engine.dispose()
