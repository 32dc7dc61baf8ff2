"""The ``numlookup`` command: a module per command group, errors mapped to exit codes in ``base``.

Every command that prints data takes ``--json`` so scripts never parse tables.
Amounts go in and out as exact decimal strings. Modules import what only their
own commands need inside those commands, so ``numlookup --help`` starts fast.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from numlookup.cli import accounts, credits, data, db, info, jobs, lookup, serve, sources, webhooks
from numlookup.cli.base import run
from numlookup.settings import get_settings

app = typer.Typer(help="numlookup: a self-hosted phone number lookup server.", no_args_is_help=True)


@app.callback()
def _root(
    config: Annotated[
        Path | None,
        typer.Option("--config", help="A TOML settings file (also NUMLOOKUP_CONFIG).", exists=True, dir_okay=False),
    ] = None,
) -> None:
    if config is not None:
        # Through the environment, so uvicorn's worker processes read the same file;
        # absolute, so a relative data_dir in it means the file's folder everywhere.
        os.environ["NUMLOOKUP_CONFIG"] = str(config.absolute())
        get_settings.cache_clear()
    # Read now, for every command (even those that use no setting): a bad file or
    # setting is one error line naming it, before anything is done.
    get_settings()


app.command()(serve.serve)
app.command()(info.info)
app.command()(lookup.lookup)
app.add_typer(accounts.app, name="accounts")
app.add_typer(data.app, name="data")
app.add_typer(credits.app, name="credits")
app.add_typer(db.app, name="db")
app.add_typer(sources.app, name="sources")
app.add_typer(jobs.app, name="jobs")
app.add_typer(webhooks.app, name="webhooks")


def main() -> None:
    sys.exit(run(app))
