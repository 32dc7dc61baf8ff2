"""``numlookup lookup``: offline lookups of a few numbers, or of a whole file (bulk), free of charge.

The command's options, as typer declares them (its help and its checks); what
it does is :func:`numlookup.cli.offline.run_lookup`, which a plain command line
reaches without typer (:mod:`numlookup.cli.quick`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from numlookup.cli.base import user_errors
from numlookup.cli.offline import run_lookup
from numlookup.cli.options import JsonOption
from numlookup.status import STATUS_STYLES


@user_errors
def lookup(
    numbers: Annotated[
        list[str] | None, typer.Argument(help="Numbers: international, or national with --region.")
    ] = None,
    input_file: Annotated[
        Path | None, typer.Option("--input", help="A file of numbers, one a line ('-': stdin).")
    ] = None,
    output_file: Annotated[Path | None, typer.Option("--output", help="Where results go (default: stdout).")] = None,
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="csv or jsonl (API result objects); default csv for --input, JSON for NUMBERS."),
    ] = None,
    region: Annotated[
        str | None, typer.Option(help="Read numbers without + as this region's (ISO alpha-2) national format.")
    ] = None,
    column: Annotated[
        int | None, typer.Option(help="The input is CSV: take the numbers from this column (0-based).", min=0)
    ] = None,
    header: Annotated[
        bool, typer.Option("--header", help="The input's first line is a header: it heads the output.")
    ] = False,
    delimiter: Annotated[
        str | None, typer.Option(help="The CSV input's delimiter (one character; default: ';' or ',', detected).")
    ] = None,
    style: Annotated[str | None, typer.Option(help=f"Status style: {', '.join(STATUS_STYLES)}.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Look numbers up offline (shipped and imported data). Charges nothing.

    With NUMBERS, print the API's result objects as one JSON document (or, with
    --format, CSV or JSON lines). With --input, resolve a whole file in chunks
    (memory stays flat) into CSV or JSON lines, one row per input line, a CSV
    input's columns kept; a progress bar shows on a terminal.
    """
    run_lookup(numbers, input_file, output_file, fmt, region, column, header, delimiter, style, json_output)
