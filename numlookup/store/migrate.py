"""Alembic, driven from code so ``numlookup db upgrade`` and start-up need no alembic.ini.

Alembic is imported when a migration is run or walked, not to check a schema:
``numlookup serve`` on a database already at the head, and every admin command,
compare the revision in ``alembic_version`` (read with the store's own engine,
:func:`current_revision`) with the head of the versions folder (read from the
migration files' ``revision``/``down_revision`` lines, :func:`head_revision`).
Importing Alembic for that (its command machinery, Mako, every dialect's DDL)
was a third of a second of the server's start. ``tests/store/test_migrate.py``
holds both equal to Alembic's own answers.
"""

from __future__ import annotations

import ast
import functools
from importlib import resources
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

# Where Alembic records the revision: its default, which env.py keeps.
VERSION_TABLE = "alembic_version"


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
    """The revision the database is at, as Alembic records it; None for a database it never migrated."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return None
        rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    if len(rows) > 1:  # Alembic refuses such a table too; numlookup's migrations never branch
        raise RuntimeError(f"{VERSION_TABLE} holds several revisions: {sorted(rows)}")
    return str(rows[0]) if rows else None


@functools.cache
def head_revision() -> str | None:
    """The newest migration's revision: the one no other migration revises (None without migrations)."""
    revises: dict[str, tuple[str, ...]] = {}
    for path in (resources.files("numlookup.store") / "migrations" / "versions").iterdir():
        if path.name.endswith(".py") and path.is_file():
            revision, downs = _revision_of(path.read_text(encoding="utf-8"))
            if revision is not None:
                revises[revision] = downs
    heads = set(revises) - {down for downs in revises.values() for down in downs}
    if len(heads) > 1:
        raise RuntimeError(f"the migrations have several heads: {sorted(heads)}")
    return heads.pop() if heads else None


def _revision_of(source: str) -> tuple[str | None, tuple[str, ...]]:
    """A migration file's ``revision`` and the revisions its ``down_revision`` names, read without running it.

    ``down_revision`` is None for the first migration, a revision, or (a merge) a tuple of them.
    """
    values: dict[str, Any] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and node.targets and isinstance(node.targets[0], ast.Name):
            if node.targets[0].id in ("revision", "down_revision"):
                values[node.targets[0].id] = ast.literal_eval(node.value)
    down = values.get("down_revision")
    downs = () if down is None else (down,) if isinstance(down, str) else tuple(down)
    revision = values.get("revision")
    return (str(revision) if revision is not None else None), tuple(str(d) for d in downs)
