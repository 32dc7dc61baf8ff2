"""``numlookup db``: the database schema."""

from __future__ import annotations

import typer

from numlookup.cli.base import open_engine, out, settings, user_errors
from numlookup.store import shown_url, upgrade
from numlookup.store.migrate import current_revision

app = typer.Typer(help="The database schema.", no_args_is_help=True)


@app.command("upgrade")
@user_errors
def db_upgrade() -> None:
    """Create the database (SQLite) or its tables if missing, and apply the migrations it lacks."""
    engine, _ = open_engine(settings(), create=True)
    upgrade(engine)
    out.print(f"database {shown_url(engine)} at revision {current_revision(engine)}", highlight=False, markup=False)
    engine.dispose()
