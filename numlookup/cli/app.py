"""The ``numlookup`` command as typer runs it: a module per command group, errors mapped to exit codes in ``base``.

Every command that prints data takes ``--json`` so scripts never parse tables.
Amounts go in and out as exact decimal strings. A command's module is imported
only when that command runs (:class:`_LazyGroup`), and modules import what only
their own commands need inside those commands: ``numlookup lookup NUMBER`` loads
neither the database layer of ``accounts`` nor the server, and answers in a
fraction of a second.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.main
from typer.core import TyperCommand, TyperGroup

from numlookup.cli.base import run
from numlookup.cli.coercion import convert_plainly
from numlookup.settings import get_settings

# name -> (module of numlookup.cli, attribute): a function is a command, a Typer a command group.
# In this order in ``numlookup --help``.
_COMMANDS = {
    "serve": ("serve", "serve"),
    "info": ("info", "info"),
    "lookup": ("lookup", "lookup"),
    "accounts": ("accounts", "app"),
    "data": ("data", "app"),
    "credits": ("credits", "app"),
    "db": ("db", "app"),
    "sources": ("sources", "app"),
    "jobs": ("jobs", "app"),
    "webhooks": ("webhooks", "app"),
}


class _LazyGroup(TyperGroup):
    """The root group: a command is built from its module when it is asked for (run, or listed by ``--help``).

    Click's documented pattern for lazily loaded subcommands: importing every
    command's module up front cost more than a second (SQLAlchemy, the live
    layer, the API's models) before ``numlookup lookup NUMBER`` could answer.
    """

    def list_commands(self, ctx: Any) -> list[str]:  # click's Context; typer.Context is a subclass of it
        return [*super().list_commands(ctx), *(name for name in _COMMANDS if name not in self.commands)]

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        convert_plainly(self)  # its own options (--config); its commands are converted as they load
        return super().parse_args(ctx, args)

    def get_command(self, ctx: Any, cmd_name: str) -> TyperCommand | TyperGroup | None:
        if cmd_name not in self.commands and cmd_name in _COMMANDS:
            loaded = _load(cmd_name)
            convert_plainly(loaded)
            self.add_command(loaded, cmd_name)
        command = super().get_command(ctx, cmd_name)
        assert command is None or isinstance(command, TyperCommand | TyperGroup)
        return command


def _load(name: str) -> TyperCommand | TyperGroup:
    module, attribute = _COMMANDS[name]
    target = getattr(importlib.import_module(f"numlookup.cli.{module}"), attribute)
    if isinstance(target, typer.Typer):
        group = typer.main.get_group(target)
        group.name = name
        return group
    single = typer.Typer(add_completion=False)
    single.command(name)(target)
    command = typer.main.get_command(single)
    assert isinstance(command, TyperCommand)
    return command


app = typer.Typer(cls=_LazyGroup, help="numlookup: a self-hosted phone number lookup server.", no_args_is_help=True)


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


def run_app() -> int:
    """The command line run by typer: its exit status."""
    return run(app)
