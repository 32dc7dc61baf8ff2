"""What every command shares: the consoles, settings and database, and the one place errors become exit codes.

A command is a plain function decorated with ``@user_errors``. The mistakes a
user can make (a bad amount, an unknown account, a malformed import line, an
unreadable settings file, a file that cannot be opened) are printed as one line
on stderr and end the command with ``EXIT_USER_ERROR``; anything else is a bug
and keeps its traceback. Typer itself exits 2 for usage errors (an unknown
option, a missing argument), before a command runs.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from sqlalchemy import Engine

from numlookup.accounts import AccountError
from numlookup.billing.ledger import LedgerError
from numlookup.billing.money import AmountError
from numlookup.datasets.formats import FormatError
from numlookup.datasets.importer import ImportFailed
from numlookup.settings import Settings, SettingsError, get_settings
from numlookup.status import UnknownStyle
from numlookup.store import make_engine, upgrade
from numlookup.store.migrate import current_revision, head_revision

EXIT_USER_ERROR = 1

out = Console()
err = Console(stderr=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]

P = ParamSpec("P")
R = TypeVar("R")


class CliError(Exception):
    """A user mistake found by the command itself."""


# Errors whose message is written for the person at the terminal.
USER_ERRORS: tuple[type[Exception], ...] = (
    CliError,
    SettingsError,
    AccountError,
    AmountError,
    LedgerError,
    UnknownStyle,
    FormatError,
    ImportFailed,
    OSError,
)


def user_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Run ``command``; a user's mistake is one line on stderr and exit status ``EXIT_USER_ERROR``."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except USER_ERRORS as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(EXIT_USER_ERROR) from None

    return run


def settings() -> Settings:
    return get_settings()


def database(config: Settings | None = None) -> Engine:
    """The database at its schema's head: SQLite is migrated on first use, other databases must be upgraded."""
    config = config or settings()
    engine = make_engine(config.effective_database_url, sqlite_synchronous=config.sqlite_synchronous)
    if current_revision(engine) != head_revision(engine):
        if engine.dialect.name != "sqlite":
            raise CliError("the database schema is not up to date: run `numlookup db upgrade` first")
        upgrade(engine)
    return engine


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
