"""Command-line values converted without pydantic where typer's conversion would change nothing.

Why: typer (0.2x) converts every non-flag parameter through a pydantic
``TypeAdapter``, built when the parameter is first processed, even when it was
not given; importing pydantic and building the adapters was more than a quarter
of ``numlookup lookup NUMBER``. A parameter not given stays ``None`` (typer's
own rule, kept by its ``RuntimeParam.coerce``), a ``str`` given is itself, and
a ``list[str]`` given is the list of them, digits given for an ``int`` are that number
when it is within the parameter's range, and a ``Path`` given with typer's default
checks is ``Path(value)`` (a file that exists and cannot be read excepted): for
those no adapter is built. Every
other value (a path, a number, bytes) goes to typer's own conversion, built
only then, so its checks and error messages are typer's.

This reaches into typer's coercion layer (``typer._coercion``); on a typer
without it, :func:`convert_plainly` leaves the command as typer built it
(slower, never different).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:
    from typer._coercion import RuntimeParam, TypeDescriptor, build_runtime_param
except ImportError:  # pragma: no cover - a typer whose coercion is not pydantic's: nothing to spare
    RuntimeParam = None  # type: ignore[assignment,misc]  # reason: the fallback is "leave typer alone"


if RuntimeParam is not None:

    @dataclass(frozen=True)
    class _Plain(RuntimeParam):
        """Strings (or a list of them) as given; anything else through typer's adapter, built on first use."""

        descriptor: TypeDescriptor = field(kw_only=True)
        _typer: list[RuntimeParam] = field(default_factory=list, kw_only=True, repr=False)

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if self.annotation is str and isinstance(value, str):
                return value
            if self.annotation is int and isinstance(value, str) and value.isascii() and value.isdigit():
                info = self.parameter_info
                number = int(value)
                if (
                    not info.clamp
                    and (info.min is None or number >= info.min)
                    and (info.max is None or number <= info.max)
                ):
                    return number
            if self.annotation is Path and isinstance(value, str) and _plain_path(self.parameter_info, Path(value)):
                return Path(value)
            if self.descriptor.is_list and isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
                if self.annotation == list[str]:
                    return list(value)
            if not self._typer:
                self._typer.append(build_runtime_param(self.descriptor))
            return self._typer[0].coerce(value, param=param, ctx=ctx)


def _plain_path(info: Any, path: Path) -> bool:
    """Whether typer's conversion of a path given is ``path`` itself: its checks all off, or passed.

    With its defaults (``exists=False``, files and folders allowed, ``readable=True``)
    typer makes the path (pydantic: ``Path(value)``) and refuses only one that exists
    but cannot be read; that one goes to typer, for typer's message.
    """
    defaults = (
        not info.exists
        and info.file_okay
        and info.dir_okay
        and not info.writable
        and not info.resolve_path
        and not info.allow_dash
        and info.path_type is None
    )
    return defaults and (not info.readable or not os.path.exists(path) or os.access(path, os.R_OK))


def convert_plainly(command: Any) -> None:
    """Give ``command``'s parameters (and its subcommands', for a group) the conversion above.

    Its ``--help`` too, which click makes when the command parses its arguments
    (so it is converted then); a parameter whose conversion typer already built
    is left as it is.
    """
    if RuntimeParam is None:  # pragma: no cover - see the module's docstring
        return
    for param in getattr(command, "params", ()):
        _convert(param)
    make_help = getattr(command, "get_help_option", None)
    if make_help is not None and not getattr(make_help, "converts_plainly", False):

        def get_help_option(ctx: Any) -> Any:
            option = make_help(ctx)
            if option is not None:
                _convert(option)
            return option

        get_help_option.converts_plainly = True  # type: ignore[attr-defined]  # reason: marks the wrapper once
        command.get_help_option = get_help_option
    for sub in getattr(command, "commands", {}).values():
        convert_plainly(sub)


def _convert(param: Any) -> None:
    descriptor = getattr(param, "type_descriptor", None)
    if isinstance(descriptor, TypeDescriptor) and getattr(param, "_runtime_param", False) is None:
        if descriptor.file_annotation is None:
            param._runtime_param = _Plain(
                parameter_info=descriptor.parameter_info, annotation=descriptor.annotation, descriptor=descriptor
            )
