"""``numlookup lookup`` started without typer, when its command line is plain.

Why: importing typer (and the click it carries) is some 40 ms of CPU, a tenth
of a one-number lookup's start and more than the lookup itself. A command
line made only of numbers and the options that take a word as they are
(``--input``, ``--output``, ``--format``, ``--region``, ``--style``, each once,
as ``--option VALUE``) and the flags ``--json`` and ``--header`` (once) means
the same to typer as to :func:`parse`: the values are strings (a path becomes
a ``Path``) and nothing is checked before :func:`~numlookup.cli.offline.run_lookup`
checks it. Anything else (``--help``, ``--column``, ``--option=VALUE``, a value
or number starting with ``-``, an option twice, ``--config``) returns None:
typer reads it, with its own help, checks and messages. A test holds
:func:`parse` to the arguments typer passes for the same command lines.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

# option -> (run_lookup's parameter, a path?)
_VALUED = {
    "--input": ("input_file", True),
    "--output": ("output_file", True),
    "--format": ("fmt", False),
    "--region": ("region", False),
    "--style": ("style", False),
}
_FLAGS = {"--json": "json_output", "--header": "header"}


def parse(argv: list[str]) -> dict[str, Any] | None:
    """``run_lookup``'s arguments for a plain ``lookup …`` command line; None when typer must read it."""
    if not argv or argv[0] != "lookup":
        return None
    given: dict[str, Any] = {}
    numbers: list[str] = []
    rest = iter(argv[1:])
    for token in rest:
        if not token.startswith("-"):
            numbers.append(token)
            continue
        if token in _FLAGS and _FLAGS[token] not in given:
            given[_FLAGS[token]] = True
            continue
        if token not in _VALUED or _VALUED[token][0] in given:
            return None
        name, is_path = _VALUED[token]
        value = next(rest, None)
        if value is None or (value.startswith("-") and not (is_path and value == "-")):
            return None
        given[name] = Path(value) if is_path else value
    arguments: dict[str, Any] = {
        "numbers": numbers or None,
        "input_file": None,
        "output_file": None,
        "fmt": None,
        "region": None,
        "column": None,
        "header": False,
        "delimiter": None,
        "style": None,
        "json_output": False,
    }
    arguments.update(given)
    return arguments


def run_quickly(argv: list[str]) -> int | None:
    """Run a plain ``lookup`` command line as typer would (settings read first); its exit status, or None.

    Errors end as they do under typer: a user's mistake is one ``error:`` line
    (``base.fail``), an interrupt is ``aborted`` after a new line, as click has it.
    """
    arguments = parse(argv)
    if arguments is None:
        return None
    from numlookup.cli.base import _one_line, fail, user_error_types
    from numlookup.cli.offline import run_lookup
    from numlookup.settings import get_settings

    try:
        get_settings()  # as the root command does for every command: a bad setting is an error before anything
        run_lookup(**arguments)
    except (EOFError, KeyboardInterrupt):
        sys.stderr.write("\n")
        return fail("aborted")
    except user_error_types() as exc:
        return fail(_one_line(exc))
    return 0
