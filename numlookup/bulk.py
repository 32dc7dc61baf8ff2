"""Bulk lookup of a file: numbers in, one result line per input line out, in chunks.

Memory stays flat for files of any size: the input is read, resolved and written
a chunk at a time (``bulk_input`` reads it and decides its shape). The hot path
never builds an object per number: the resolver answers in arrays, each
distinct (status, type, network) combination is formatted once per chunk, and a
line is its input, its E.164 form and that pre-formatted tail. A CSV input's
rows keep their fields: those are joined (and quoted where the csv module would)
per row, the one per-row cost its shape needs.
"""

from __future__ import annotations

import csv
import gc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, Literal

import msgspec
import numpy as np

from numlookup.bulk_input import BulkReader
from numlookup.numbering.layout import REASONS, TYPE_NAMES
from numlookup.numbering.models import Network
from numlookup.numbering.resolver import Columns, Resolver
from numlookup.results import NumberResult, number_result
from numlookup.status import StatusStyle

OutputFormat = Literal["csv", "jsonl"]
CSV_HEADER = (
    "input,number,valid,reason,type,region,country_code,country_prefix,"
    "original_mccmnc,original_network,ported,current_mccmnc,current_network\n"
)
LOOKUP_COLUMNS = CSV_HEADER.rstrip("\n").split(",")[1:]  # what a CSV input's kept columns are followed by
_NEEDS_QUOTES = frozenset(',"\r\n')
_NUMBER_KEY = b'{"number":'
_NUMBER_FIELD = b',"number":'


@dataclass
class BulkStats:
    numbers: int = 0
    valid: int = 0
    bytes_read: int = 0


def _csv_field(value: str) -> str:
    if _NEEDS_QUOTES.isdisjoint(value):
        return value
    return '"' + value.replace('"', '""') + '"'


def csv_tail(columns: Columns, i: int, *, ported_known: bool = False, ported_network: Network | None = None) -> str:
    """Everything after ``input,number,`` for row ``i``: the same for every row of its combination.

    ``ported_known``: a live source told where the number is now (``ported_network``,
    None: not ported), which wins over porting data, as in the API's result.
    """
    batch = columns.batch
    reason = REASONS[int(batch.reason[i])]
    if reason is not None:
        return f"false,{reason.value},,,,,,,,,"
    original: Network = columns.networks[columns.original[i]]
    current = columns.networks[columns.ported[i]] if columns.ported[i] >= 0 else original
    ported = _ported_field(columns, i)
    if ported_known:
        current, ported = ported_network or original, "true" if ported_network is not None else "false"
    country = original.country
    fields = [
        "true",
        "",
        TYPE_NAMES.get(int(batch.number_type[i]), "unknown"),
        country.region,
        country.alpha3,
        country.calling_code,
        original.mccmnc or "",
        _csv_field(original.name or ""),
        ported,
        current.mccmnc or "",
        _csv_field(current.name or ""),
    ]
    return ",".join(fields)


def _ported_field(columns: Columns, i: int) -> str:
    """``true``/``false`` where porting data covers the number (as the API's ``ported``), empty for unknown (null)."""
    if columns.ported[i] >= 0:
        return "true"
    return "false" if columns.porting_known[i] else ""


def json_tail(columns: Columns, i: int, style: StatusStyle, checked_at: str | None = None) -> bytes:
    """The API result object of row ``i`` without its leading ``{"number": …`` (added per row)."""
    return result_tail(number_result(columns.resolution(i), style, checked_at))


def result_tail(result: NumberResult) -> bytes:
    """A result object's JSON after its ``number`` (which comes first): from the comma on."""
    encoded = msgspec.json.encode(result)
    return encoded[len(_NUMBER_KEY) + len(msgspec.json.encode(result.number)) :]


def combinations(columns: Columns) -> tuple[np.ndarray, list[int]]:
    """A code per row such that rows with equal codes format the same; and one representative row per code."""
    batch = columns.batch
    width = len(columns.networks) + 1
    key = (
        ((batch.reason.astype(np.int64) * 64 + batch.number_type.astype(np.int64)) * width + columns.original + 1)
        * width
        + columns.ported
        + 1
    ) * 2 + columns.porting_known  # known "not ported" and unknown print differently
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    return inverse.ravel(), first.tolist()


def numbers_column(columns: Columns) -> list[str]:
    """E.164 where the input parsed, else the input as given."""
    batch = columns.batch
    digits = batch.digits.tolist()
    out = ["+" + str(d) if d else raw for d, raw in zip(digits, columns.inputs, strict=True)]
    for i, long in batch.long_e164.items():
        out[i] = long
    return out


def format_csv(columns: Columns) -> str:
    codes, representatives = combinations(columns)
    return render_csv(columns.inputs, numbers_column(columns), [csv_tail(columns, i) for i in representatives], codes)


def render_csv(inputs: Sequence[str], numbers: Sequence[str], tails: Sequence[str], codes: np.ndarray) -> str:
    """CSV lines (no header): each row's input, its number and the tail of its code."""
    joined = "".join(inputs)
    if "," in joined or '"' in joined or "\r" in joined or "\n" in joined:  # rare: quote only then, only what needs it
        inputs = [_csv_field(s) for s in inputs]
        numbers = [_csv_field(s) for s in numbers]
    return "".join(
        [f"{inp},{num},{tails[code]}\n" for inp, num, code in zip(inputs, numbers, codes.tolist(), strict=True)]
    )


def format_jsonl(columns: Columns, style: StatusStyle) -> bytes:
    codes, representatives = combinations(columns)
    tails = [json_tail(columns, i, style) for i in representatives]
    return render_jsonl(columns.inputs, numbers_column(columns), tails, codes)


def render_jsonl(inputs: Sequence[str], numbers: Sequence[str], tails: Sequence[bytes], codes: np.ndarray) -> bytes:
    """JSON lines: each row's ``input`` and ``number``, then the tail of its code (the rest of its result object)."""
    encode = msgspec.json.encode
    return b"".join(
        [
            b'{"input":' + encode(inp) + _NUMBER_FIELD + encode(num) + tails[code] + b"\n"
            for inp, num, code in zip(inputs, numbers, codes.tolist(), strict=True)
        ]
    )


def _quote(value: str, delimiter: str) -> str:
    """A field as the csv module writes it: quoted when it holds the delimiter, a quote or a line end."""
    if delimiter not in value and '"' not in value and "\r" not in value and "\n" not in value:
        return value
    return '"' + value.replace('"', '""') + '"'


def _delimited(line: str, delimiter: str) -> str:
    """A comma-separated ``line`` (``csv_tail``, the header) written with ``delimiter``: once per combination."""
    if delimiter == ",":
        return line
    return delimiter.join([_quote(field, delimiter) for field in next(csv.reader([line]))])


def csv_header(reader: BulkReader) -> str:
    """The output's first line: the input's header (or ``input``) and the lookup's columns.

    A CSV input's columns are named by its header line; without one (or where the
    header is short) by their 0-based position, ``column_0``, ``column_1``, … as
    ``--column`` counts them.
    """
    if reader.column is None:
        name = reader.header[0] if reader.header and reader.header[0] else "input"
        return _csv_field(name) + "," + CSV_HEADER.split(",", 1)[1]
    names = list(reader.header or [])
    names += [f"column_{i}" for i in range(len(names), reader.width)]
    d = reader.delimiter
    return d.join([_quote(name, d) for name in names]) + d + _delimited(",".join(LOOKUP_COLUMNS), d) + "\n"


def _kept_lines(rows: Sequence[list[str]], width: int, d: str) -> list[str]:
    """Each row's fields as CSV text (padded to ``width``): one ``str.join`` per row.

    One scan of the chunk tells whether any field holds a delimiter, a quote or a
    line end; only then is each column scanned, and only the values of a column
    that needs it are quoted (a name column with commas, say), as the csv module would.
    """
    if min(map(len, rows), default=width) < width:
        rows = [row if len(row) >= width else row + [""] * (width - len(row)) for row in rows]
    lines = list(map(d.join, rows))
    text = "\n".join(lines)
    fields = sum(map(len, rows))
    if (
        '"' not in text
        and "\r" not in text
        and text.count("\n") == len(lines) - 1
        and text.count(d) == fields - len(rows)
    ):
        return lines
    if fields != width * len(rows):  # wider rows (the width was a guess): row by row
        return [d.join([_quote(field, d) for field in row]) for row in rows]
    columns = [[row[j] for row in rows] for j in range(width)]  # not zip(*rows): an iterator per row to collect
    for j, values in enumerate(columns):
        text = "\n".join(values)
        if d in text or '"' in text or "\r" in text or text.count("\n") != len(values) - 1:
            columns[j] = [_quote(value, d) for value in values]
    return list(map(d.join, zip(*columns, strict=True)))


def format_rows_csv(columns: Columns, rows: Sequence[list[str]], width: int, delimiter: str) -> str:
    """CSV input's rows as CSV: each row's fields (padded to ``width``), then the lookup's columns."""
    d = delimiter
    codes, representatives = combinations(columns)
    tails = [d + _delimited(csv_tail(columns, i), d) + "\n" for i in representatives]
    numbers = numbers_column(columns)
    joined = "".join(numbers)
    if d in joined or '"' in joined or "\r" in joined or "\n" in joined:
        numbers = [_quote(s, d) for s in numbers]
    lines = _kept_lines(rows, width, d)
    return "".join(
        [f"{line}{d}{num}{tails[code]}" for line, num, code in zip(lines, numbers, codes.tolist(), strict=True)]
    )


def format_rows_jsonl(columns: Columns, rows: Sequence[list[str]], style: StatusStyle) -> bytes:
    """CSV input's rows as JSON lines: the looked-up field as ``input``, the row's fields as ``row``, the result."""
    codes, representatives = combinations(columns)
    tails = [json_tail(columns, i, style) for i in representatives]
    encode = msgspec.json.encode
    numbers = numbers_column(columns)
    return b"".join(
        [
            b'{"input":' + encode(inp) + b',"row":' + encode(row) + b',"number":' + encode(num) + tails[code] + b"\n"
            for inp, row, num, code in zip(columns.inputs, rows, numbers, codes.tolist(), strict=True)
        ]
    )


def _formatted(
    columns: Columns, rows: Sequence[list[str]] | None, reader: BulkReader, fmt: OutputFormat, style: StatusStyle
) -> bytes:
    if rows is None:
        return format_csv(columns).encode("utf-8") if fmt == "csv" else format_jsonl(columns, style)
    if fmt == "csv":
        return format_rows_csv(columns, rows, reader.width, reader.delimiter).encode("utf-8")
    return format_rows_jsonl(columns, rows, style)


def lookup_numbers(
    resolver: Resolver,
    numbers: Sequence[str],
    sink: IO[bytes],
    *,
    fmt: OutputFormat = "csv",
    region: str | None = None,
    style: StatusStyle = "seed",
) -> BulkStats:
    """Numbers given as a list (``numlookup lookup NUMBER…``), written exactly as a file of them would be."""
    columns = resolver.resolve_columns(numbers, region)
    if fmt == "csv":
        sink.write((CSV_HEADER + format_csv(columns)).encode("utf-8"))
    else:
        sink.write(format_jsonl(columns, style))
    return BulkStats(numbers=len(numbers), valid=int(columns.batch.valid.sum()))


def lookup_file(
    resolver: Resolver,
    source: IO[bytes],
    sink: IO[bytes],
    *,
    fmt: OutputFormat = "csv",
    region: str | None = None,
    column: int | None = None,
    header: bool = False,
    delimiter: str | None = None,
    style: StatusStyle = "seed",
    progress: Callable[[int, int], None] | None = None,
) -> BulkStats:
    """Resolve every row of ``source`` into ``sink``; ``progress(rows, bytes)`` after each chunk.

    One output row per input line (see ``bulk_input``); the CSV header comes
    first, written once the first chunk has shown the input's shape. Raises
    ``BulkInputError`` on a row the shape rules refuse (earlier chunks are written).

    The cyclic garbage collector is paused while a chunk is read, resolved and
    written, and runs between chunks: a CSV chunk is 100,000 lists (its rows),
    which it would otherwise scan again and again for cycles they cannot form,
    a third of the run's time. Cycles made meanwhile are found at the next pause.
    """
    stats = BulkStats()
    reader = BulkReader(source, column=column, header=header, delimiter=delimiter)
    started = False
    collecting = gc.isenabled()
    gc.disable()
    try:
        for chunk in reader.chunks():
            if fmt == "csv" and not started:
                sink.write(csv_header(reader).encode("utf-8"))
            started = True
            stats.bytes_read += chunk.consumed
            if chunk.numbers:
                columns = resolver.resolve_columns(chunk.numbers, region)
                sink.write(_formatted(columns, chunk.rows, reader, fmt, style))
                stats.numbers += len(chunk.numbers)
                stats.valid += int(columns.batch.valid.sum())
                del columns
            if progress is not None:
                progress(len(chunk.numbers), chunk.consumed)
            del chunk  # its rows go now, not once the next chunk has been read beside them
            if collecting:
                gc.collect(1)
    finally:
        if collecting:
            gc.enable()
    if fmt == "csv" and not started:  # an empty input: the header alone
        sink.write(csv_header(reader).encode("utf-8"))
    return stats
