"""Options many commands share, as typer declares them.

Why apart from ``base``: declaring one needs typer, and ``base`` (the consoles,
errors and settings) is also what ``numlookup lookup``'s typer-free start
(:mod:`numlookup.cli.quick`) runs on.
"""

from __future__ import annotations

from typing import Annotated

import typer

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
