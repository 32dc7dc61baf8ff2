"""``numlookup db``: the database schema."""

from __future__ import annotations

import typer

from numlookup.cli.base import out, settings, user_errors
from numlookup.store import make_engine, upgrade
from numlookup.store.migrate import current_revision

app = typer.Typer(help="The database schema.", no_args_is_help=True)


@app.command("upgrade")
@user_errors
def db_upgrade() -> None:
    """Apply the migrations the database is missing."""
    config = settings()
    engine = make_engine(config.effective_database_url, sqlite_synchronous=config.sqlite_synchronous)
    upgrade(engine)
    out.print(f"database at revision {current_revision(engine)}")
