"""Alembic, driven from code so ``numlookup db upgrade`` and start-up need no alembic.ini.

Alembic is imported when a migration or a revision is asked for, not with the
package: a command that never opens the database (``--help``, ``info``, a
mistyped option) starts in half the time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import Engine

if TYPE_CHECKING:
    from alembic.config import Config


def _config(engine: Engine) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "numlookup.store:migrations")
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision``; a no-op when it is there already."""
    from alembic import command

    command.upgrade(_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema back to ``revision``, running the newer migrations' downgrades (newest first).

    For rolling back to an older numlookup, whose nodes refuse a schema newer than
    their own. ``revision`` should be one of ``older_revisions``: those never go
    below the first migration, which made the money tables.
    """
    from alembic import command

    command.downgrade(_config(engine), revision)


def older_revisions(engine: Engine) -> list[str]:
    """The revisions the database can be taken back to, newest first: its own, and every one below it."""
    current = current_revision(engine)
    if current is None:
        return []
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_config(engine))
    return [rev.revision for rev in script.walk_revisions(base="base", head=current)]


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_config(engine)).get_current_head()
