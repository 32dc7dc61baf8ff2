"""What ``numlookup lookup`` does once its arguments are read: offline lookups of a few numbers or of a file.

Why apart from the command (:mod:`numlookup.cli.lookup`): typer's import is a
tenth of the start of a one-number lookup, and a plain command line
(:mod:`numlookup.cli.quick`) is read without it; both run :func:`run_lookup`.
Nothing here imports typer.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from numlookup.cli.base import CliError, database, err, print_json, region_code, settings
from numlookup.status import StatusStyle, answer_style, status_style

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import ExitStack

    from numlookup.bulk import OutputFormat
    from numlookup.numbering import Resolver
    from numlookup.numbering.operator_data import OperatorData
    from numlookup.settings import Settings

OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("csv", "jsonl")


def _output_format(text: str) -> OutputFormat:
    for fmt in OUTPUT_FORMATS:
        if text == fmt:
            return fmt
    raise CliError("--format is csv or jsonl")


def _region(text: str | None) -> str | None:
    return None if text is None else region_code(text)


def _delimiter(text: str | None) -> str | None:
    """One character; ``\\t`` spells a tab, since a shell makes a literal one awkward to type."""
    if text is None:
        return None
    value = "\t" if text == "\\t" else text
    if len(value) != 1 or value in '"\r\n':
        raise CliError("--delimiter is one character such as ';' or '\\t' (a tab), not a quote")
    return value


def _refuse_nonsense(
    *,
    numbers: bool,
    fmt: str | None,
    json_output: bool,
    column: int | None,
    header: bool,
    delimiter: str | None,
    style: str | None,
) -> None:
    """An option given must act: refuse the ones that would do nothing with the others given."""
    if numbers:
        options = (("--column", column is not None), ("--header", header), ("--delimiter", delimiter is not None))
        given = [name for name, on in options if on]
        if given:
            raise CliError(f"{given[0]} is for an --input file; NUMBERS have no columns or header")
    elif json_output:
        raise CliError("--json is for NUMBERS; a file's results are --format csv or jsonl")
    if json_output and fmt is not None:
        raise CliError("--json and --format both choose the output: give one")
    if delimiter is not None and column is None:
        raise CliError("--delimiter separates a CSV input's fields: it needs --column N")
    if style is not None and (fmt == "csv" or (fmt is None and not numbers)):
        raise CliError("--style needs result objects: --format jsonl (csv has no status)")


def run_lookup(
    numbers: list[str] | None,
    input_file: Path | None,
    output_file: Path | None,
    fmt: str | None,
    region: str | None,
    column: int | None,
    header: bool,
    delimiter: str | None,
    style: str | None,
    json_output: bool,
) -> None:
    """``numlookup lookup``: look numbers up offline (shipped and imported data). Charges nothing.

    With NUMBERS, print the API's result objects as one JSON document (or, with
    --format, CSV or JSON lines). With --input, resolve a whole file in chunks
    (memory stays flat) into CSV or JSON lines, one row per input line, a CSV
    input's columns kept; a progress bar shows on a terminal.
    """
    from numlookup.numbering import Resolver
    from numlookup.numbering.resolver import shared_plan

    if (input_file is None) == (not numbers):
        raise CliError("give NUMBERS or --input FILE (not both)")
    _refuse_nonsense(
        numbers=bool(numbers),
        fmt=fmt,
        json_output=json_output,
        column=column,
        header=header,
        delimiter=delimiter,
        style=style,
    )
    output = _output_format(fmt) if fmt is not None else None
    separator = _delimiter(delimiter)
    config = settings()
    chosen = status_style(style) if style else answer_style(config.status_style, None)  # auto: no client, the seed's
    hint = _region(region)
    resolver = Resolver(operator=_operator_data(config), plan=shared_plan(config.data_path / "cache"))
    if numbers:
        _numbers(resolver, numbers, output_file, output, hint, chosen)
        return
    assert input_file is not None
    _bulk(resolver, input_file, output_file, output or "csv", hint, column, header, separator, chosen)


def _operator_data(config: Settings) -> OperatorData:
    """The active imported data: read with sqlite3 where it can be (a fast start), else through SQLAlchemy."""
    from numlookup.datasets.active import quick_operator_data

    quick = quick_operator_data(config.effective_database_url, config.data_path)
    if quick is not None:
        return quick
    from numlookup.datasets.follower import load_operator_data

    return load_operator_data(database(config), config.data_path)


def _numbers(
    resolver: Resolver,
    numbers: list[str],
    output_file: Path | None,
    fmt: OutputFormat | None,
    region: str | None,
    style: StatusStyle,
) -> None:
    """NUMBERS from the command line: one JSON document ``{"result": [...]}``, or CSV or JSON lines."""
    import json

    import msgspec

    from numlookup.bulk import lookup_numbers
    from numlookup.results import number_result

    to_stdout = output_file is None or str(output_file) == "-"
    if fmt is None:
        columns = resolver.resolve_columns(numbers, region)
        results = [number_result(resolution, style) for resolution in columns.resolutions()]
        document = msgspec.to_builtins({"result": results})
        if to_stdout:
            print_json(document)
        else:
            assert output_file is not None
            output_file.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return
    if to_stdout:
        lookup_numbers(resolver, numbers, sys.stdout.buffer, fmt=fmt, region=region, style=style)
        sys.stdout.buffer.flush()
    else:
        assert output_file is not None
        with output_file.open("wb") as sink:
            lookup_numbers(resolver, numbers, sink, fmt=fmt, region=region, style=style)


def _bulk(
    resolver: Resolver,
    input_file: Path,
    output_file: Path | None,
    fmt: OutputFormat,
    region: str | None,
    column: int | None,
    header: bool,
    delimiter: str | None,
    style: StatusStyle,
) -> None:
    """A whole file; a row the file's shape cannot answer stops it, and a partial --output file is removed."""
    import time
    from contextlib import ExitStack

    from numlookup.bulk import lookup_file
    from numlookup.bulk_input import BulkInputError

    from_stdin = str(input_file) == "-"
    to_stdout = output_file is None or str(output_file) == "-"
    with ExitStack() as stack:
        source = sys.stdin.buffer if from_stdin else stack.enter_context(input_file.open("rb"))
        sink = sys.stdout.buffer if output_file is None or to_stdout else stack.enter_context(output_file.open("wb"))
        started = time.perf_counter()
        advance = _progress_bar(stack, None if from_stdin else input_file.stat().st_size, started)
        try:
            stats = lookup_file(
                resolver,
                source,
                sink,
                fmt=fmt,
                region=region,
                column=column,
                header=header,
                delimiter=delimiter,
                style=style,
                progress=advance,
                then_exit=True,  # the last thing either way in: numlookup.cli.end, or typer's exit
            )
        except BulkInputError as exc:
            if not to_stdout and output_file is not None and output_file.is_file():
                output_file.unlink()  # half a file of results would pass for a whole one
            raise CliError(str(exc)) from None
        sink.flush()
    elapsed = time.perf_counter() - started
    if not to_stdout or err.is_terminal:
        err.print_plain(
            f"{stats.numbers:,} numbers ({stats.valid:,} valid) in {elapsed:.1f}s, "
            f"{stats.numbers / max(elapsed, 1e-9):,.0f}/s; slow path: {resolver.plan.stats.slow:,}"
        )


def _progress_bar(stack: ExitStack, total: int | None, started: float) -> Callable[[int, int], None] | None:
    """A progress bar on a terminal (``None`` elsewhere: rich's progress module is not even imported)."""
    if not err.is_terminal:
        return None
    import time

    from rich.progress import BarColumn, Progress, TimeRemainingColumn

    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        "[progress.percentage]{task.percentage:>3.0f}%",
        TimeRemainingColumn(),
        console=err.console,
        transient=False,
    )
    stack.enter_context(progress)
    task = progress.add_task("looking up", total=total)
    done = 0

    def advance(count: int, consumed: int) -> None:
        nonlocal done
        done += count
        rate = done / max(time.perf_counter() - started, 1e-9)
        progress.update(task, advance=consumed, description=f"{done:,} numbers, {rate:,.0f}/s")

    return advance
