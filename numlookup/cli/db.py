"""``numlookup db``: the database schema, and consistent backups of the database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from numlookup.cli.base import CliError, open_engine, out, print_json, settings, user_errors
from numlookup.cli.options import JsonOption
from numlookup.store import shown_url, upgrade
from numlookup.store.migrate import current_revision, downgrade, older_revisions

app = typer.Typer(help="The database schema, and backups.", no_args_is_help=True)


@app.command("upgrade")
@user_errors
def db_upgrade() -> None:
    """Create the database (SQLite) or its tables if missing, and apply the migrations it lacks."""
    engine, _ = open_engine(settings(), create=True)
    upgrade(engine)
    out.print(f"database {shown_url(engine)} at revision {current_revision(engine)}", highlight=False, markup=False)
    engine.dispose()


@app.command("downgrade")
@user_errors
def db_downgrade(
    revision: Annotated[
        str, typer.Argument(help="The revision to go back to: the older version's, as `db upgrade` printed it.")
    ],
) -> None:
    """Undo the migrations above REVISION, to roll back to an older numlookup (stop the newer nodes first).

    Accounts, balances and the ledger stay; what the newer migrations added goes
    (their tables and what is in them). Take a backup first.
    """
    engine, _ = open_engine(settings())
    choices = older_revisions(engine)
    if revision not in choices:
        raise CliError(
            f"cannot go back to revision {revision!r}: the database is at {current_revision(engine)}, "
            f"and can go back to {', '.join(choices) or 'nothing'}"
        )
    downgrade(engine, revision)
    out.print(f"database {shown_url(engine)} at revision {current_revision(engine)}", highlight=False, markup=False)
    engine.dispose()


@app.command("backup")
@user_errors
def db_backup(
    file: Annotated[Path, typer.Argument(help="Where to write the copy (a new file).", show_default=False)],
    force: Annotated[bool, typer.Option("--force", help="Replace FILE if it exists.")] = False,
    json: JsonOption = False,
) -> None:
    """Write a consistent copy of the database to FILE, while the servers keep running and charging.

    SQLite: a copy of the database file, made with SQLite's backup API; restore it
    by putting it in place of numlookup.db with every node stopped. PostgreSQL:
    pg_dump's custom format (pg_dump must be on PATH); restore it with pg_restore.
    """
    from numlookup.store.backup import backup_database

    made = backup_database(settings().effective_database_url, file, force=force)
    if json:
        print_json({"path": str(made.path), "bytes": made.size, "backend": made.backend, "revision": made.revision})
        return
    revision = f" at revision {made.revision}" if made.revision else ""
    out.print(
        f"backup of the {made.backend} database{revision} written to {made.path} ({made.size:,} bytes)",
        soft_wrap=True,
        highlight=False,
    )
