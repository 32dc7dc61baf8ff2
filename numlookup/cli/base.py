"""What every command shares: the consoles, settings and database, and the one place errors become exit codes.

A command is a plain function decorated with ``@user_errors``. The mistakes a
user can make (a bad amount, an unknown account, a network that is no CIDR, a
malformed import line (``data`` makes it a ``CliError``, so this module need not
import the importer), an unreadable settings file, a file that cannot be
opened, a database that does not exist or does not answer) are printed as one
line ``error: ...`` on stderr and end the command with ``EXIT_USER_ERROR``;
:func:`run`, which ``numlookup`` runs, maps the same errors for whatever escapes
a command, and typer's usage errors (an unknown option, a missing argument, a
value of the wrong type, a file that does not exist) to one line and
``EXIT_USAGE_ERROR``. Anything else is a bug and keeps its traceback.

Output that is not going to a terminal (a pipe, a file) is printed on a console
as wide as any line, so rich never wraps a line or cuts a table at 80 columns:
``numlookup accounts list | grep acme`` sees whole rows. Scripts should still
read ``--json``.

Only ``serve`` and ``db upgrade`` create a database. Every other command opens
the existing one, and a missing one is an error naming where it looked.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, cast

from numlookup.settings import Settings, get_settings

if TYPE_CHECKING:
    import typer
    from rich.console import Console
    from sqlalchemy import Engine

EXIT_USER_ERROR = 1
EXIT_USAGE_ERROR = 2  # what click and typer use for usage errors

# Wide enough for any line we print: piped output is never wrapped or cut.
PIPED_WIDTH = 1 << 16


class LazyConsole:
    """A rich ``Console`` made when first used: a terminal's own width on a terminal; otherwise no wrapping.

    Why lazy: importing rich's console costs a tenth of a second or so, and
    ``numlookup lookup NUMBER`` (which writes its JSON straight to stdout) never
    prints through one. Give rich itself ``.console`` (a progress bar's).
    """

    def __init__(self, *, stderr: bool = False) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        if self._console is None:
            from rich.console import Console

            console = Console(stderr=self._stderr)
            self._console = console if console.is_terminal else Console(stderr=self._stderr, width=PIPED_WIDTH)
        return self._console

    @property
    def is_terminal(self) -> bool:
        if self._console is None and not self._maybe_terminal():
            return False
        return self.console.is_terminal

    def _maybe_terminal(self) -> bool:
        """False only where rich's ``Console.is_terminal`` is False too, asked without importing rich.

        Why: deciding whether to show a progress bar, and printing a bulk run's
        summary into a log, imported rich's console (some 30 ms of a 300,000-line
        run) only to learn "not a terminal". rich says True only for
        ``TTY_COMPATIBLE=1``, a non-empty ``FORCE_COLOR`` or a stream that is a
        tty; with neither variable set and no tty, it says False.
        """
        if "TTY_COMPATIBLE" in os.environ or "FORCE_COLOR" in os.environ:
            return True
        stream = sys.stderr if self._stderr else sys.stdout
        try:
            return bool(stream.isatty())
        except (AttributeError, ValueError):  # no stream, or a closed one: rich decides
            return True

    def print(self, *objects: Any, **options: Any) -> None:
        """``Console.print``."""
        self.console.print(*objects, **options)

    def print_plain(self, line: str) -> None:
        """A line free of markup as ``print(line, highlight=False)`` prints it; written directly off a terminal.

        Off a terminal the console is as wide as any line and adds no colour, so
        what it writes is ``line`` and a newline: written here without rich.
        """
        if self._console is None and not self._maybe_terminal():
            stream = sys.stderr if self._stderr else sys.stdout
            stream.write(line + "\n")
            stream.flush()
            return
        self.console.print(line, highlight=False)


out = LazyConsole()
err = LazyConsole(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")


class CliError(Exception):
    """A user mistake found by the command itself."""


# Errors whose message is written for the person at the terminal, by module and name. A
# command imports only what it needs (``numlookup lookup`` no SQLAlchemy), so the
# classes are looked up among the modules already imported: an error whose module
# was never imported cannot have been raised.
_USER_ERRORS = (
    ("numlookup.cli.base", "CliError"),
    ("numlookup.settings", "SettingsError"),
    ("numlookup.accounts.errors", "AccountError"),
    ("numlookup.billing.money", "AmountError"),
    ("numlookup.billing.ledger", "LedgerError"),
    ("numlookup.status", "UnknownStyle"),
    ("numlookup.datasets.formats", "FormatError"),
    ("numlookup.datasets.distribution", "MissingDataset"),
    ("numlookup.store.backup", "BackupError"),
    ("numlookup.webhooks.outbox", "WebhookError"),
)


def user_error_types() -> tuple[type[Exception], ...]:
    """The user-error classes of every imported module (and ``OSError``): what ``except`` maps to one line."""
    loaded = [getattr(sys.modules[module], name) for module, name in _USER_ERRORS if module in sys.modules]
    return (*loaded, OSError)


def _click_exception() -> type[Exception]:
    """The common base of the exceptions typer raises (recent typer releases carry their own copy of click)."""
    import typer

    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


class _ClickException(Protocol):
    exit_code: int

    def format_message(self) -> str: ...

    def show(self) -> None: ...


def fail(message: str, status: int = EXIT_USER_ERROR) -> int:
    """Print ``error: message`` as one line on stderr; returns ``status``, the exit status."""
    from rich.markup import escape

    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    return status


def user_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Run ``command``; a user's mistake is one line on stderr and exit status ``EXIT_USER_ERROR``."""

    @functools.wraps(command)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except user_error_types() as exc:
            import typer

            raise typer.Exit(fail(_one_line(exc))) from None

    return guarded


def run(app: typer.Typer) -> int:
    """Run the ``numlookup`` command; returns its exit status. Every failure a user causes is one ``error:`` line."""
    import typer

    try:
        result = app(standalone_mode=False)
    except user_error_types() as exc:
        return fail(_one_line(exc))
    except typer.Abort:
        return fail("aborted")
    except Exception as exc:
        if not isinstance(exc, _click_exception()):
            raise  # a bug: typer shows its traceback
        usage = cast(_ClickException, exc)
        if type(exc).__name__ == "NoArgsIsHelpError":  # a group run without a command: its help
            usage.show()
            return usage.exit_code
        context = getattr(exc, "ctx", None)
        hint = f" (see `{context.command_path} --help`)" if context is not None else ""
        return fail(_one_line(usage.format_message()) + hint, EXIT_USAGE_ERROR)
    return result if isinstance(result, int) else 0


def _one_line(error: object) -> str:
    return " ".join(str(error).split())


def settings() -> Settings:
    return get_settings()


def _hint(config: Settings) -> str:
    if config.effective_database_url.startswith("sqlite"):
        return "start the server or run `numlookup db upgrade` first"
    return "run `numlookup db upgrade` first"


def open_engine(config: Settings, *, create: bool = False) -> tuple[Engine, str | None]:
    """The engine and the schema revision its database is at; errors name the database (password masked).

    Without ``create`` a missing SQLite file is an error and nothing is created.
    """
    from sqlalchemy.exc import ArgumentError, DBAPIError

    from numlookup.store import NoDatabase, make_engine, shown_url
    from numlookup.store.migrate import current_revision

    try:
        engine = make_engine(config.effective_database_url, sqlite_synchronous=config.sqlite_synchronous, create=create)
    except NoDatabase as exc:
        raise CliError(f"{exc}; {_hint(config)}") from None
    except (ImportError, ArgumentError) as exc:  # a driver that is not installed, a dialect SQLAlchemy lacks
        raise CliError(f"cannot use the database {config.shown_database_url}: {exc}") from None
    try:
        return engine, current_revision(engine)
    except DBAPIError as exc:  # the server does not answer, refuses us, the file is no database
        engine.dispose()
        reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
        raise CliError(f"cannot open the database {shown_url(engine)}: {reason}") from None


def database(config: Settings | None = None, *, create: bool = False) -> Engine:
    """The database at its schema's head.

    It must exist, unless ``create`` (``serve``): then a SQLite database is
    created. An existing SQLite database is migrated on use; other databases
    must be upgraded (``numlookup db upgrade``) first.
    """
    from numlookup.store import shown_url, upgrade
    from numlookup.store.migrate import head_revision

    config = config or settings()
    engine, current = open_engine(config, create=create)
    if current == head_revision():
        return engine
    if engine.dialect.name == "sqlite" and (create or current is not None):
        upgrade(engine)
        return engine
    shown = shown_url(engine)
    engine.dispose()
    if current is None:
        raise CliError(f"no numlookup database in {shown}; {_hint(config)}")
    raise CliError(f"the database {shown} has an older schema; run `numlookup db upgrade` first")


def region_code(text: str, option: str = "--region") -> str:
    """An ISO 3166-1 alpha-2 region libphonenumber knows, upper-cased; else a ``CliError`` naming the option."""
    import phonenumbers

    if text.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise CliError(f"{option}: unknown region {text!r}; use an ISO 3166-1 alpha-2 code such as DE")
    return text.upper()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
