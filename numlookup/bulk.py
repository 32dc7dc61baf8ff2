"""Bulk lookup of a file: numbers in, one result line per input line out, in chunks.

Memory stays flat for files of any size: the input is read, resolved and written
a chunk at a time (``bulk_input`` reads it and decides its shape). The hot path
never builds an object per number: the resolver answers in arrays, each
distinct (status, type, network) combination is formatted once per chunk, and a
line is its input, its E.164 form and that pre-formatted tail. A plain input
goes further (``format_block``): its lines stay the bytes read, the ``+``-and-digits
ones reach the tables as integers read from those bytes, and a block's output
is a list of shared pieces, joined and written half a megabyte at a time (``write_pieces``).
A CSV input's rows keep their fields: those are joined (and quoted where the
csv module would) per row, the one per-row cost its shape needs.
"""

from __future__ import annotations

import csv
import gc
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Literal, overload

import msgspec
import numpy as np
import numpy.typing as npt

from numlookup.bulk_input import BulkReader, LineBlock, LineScan, scan_lines
from numlookup.numbering.interning import group
from numlookup.numbering.layout import MAX_DIGITS, REASONS, TYPE_NAMES
from numlookup.numbering.models import Network
from numlookup.numbering.resolver import Columns, Resolver, international_form
from numlookup.results import NumberResult, iso_time, number_result
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
WRITE_BYTES = 1 << 19  # what write_pieces joins for one write: within the CPU's cache
_JSON_ESCAPED = re.compile(r'[\x00-\x1f"\\\ud800-\udfff]')  # what a JSON string cannot hold as it is


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


def _now() -> str:
    """A chunk's ``checkedAt``: its rows are looked up at once, and reading the clock per tail was a third of them."""
    return iso_time(datetime.now(UTC))


def result_tail(result: NumberResult) -> bytes:
    """A result object's JSON after its ``number`` (which comes first): from the comma on."""
    encoded = msgspec.json.encode(result)
    return encoded[len(_NUMBER_KEY) + len(msgspec.json.encode(result.number)) :]


def combinations(columns: Columns) -> tuple[np.ndarray, list[int]]:
    """A code per row such that rows with equal codes format the same; and one representative row per code."""
    batch = columns.batch
    width = len(columns.networks) + 1
    # In two steps, each key within a span ``group`` tells apart without a sort: the reason, type and
    # range holder; then, where porting data is loaded, the ported network and whether it is known.
    codes, one = group((batch.reason.astype(np.int64) * 64 + batch.number_type) * width + columns.original + 1)
    if (columns.ported >= 0).any() or columns.porting_known.any():  # known "not ported" and unknown print differently
        codes, one = group((codes * width + columns.ported + 1) * 2 + columns.porting_known)
    return codes, one.tolist()


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
    checked_at = _now()
    tails = [json_tail(columns, i, style, checked_at) for i in representatives]
    return render_jsonl(columns.inputs, numbers_column(columns), tails, codes)


def render_jsonl(inputs: Sequence[str], numbers: Sequence[str], tails: Sequence[bytes], codes: np.ndarray) -> bytes:
    """JSON lines: each row's ``input`` and ``number``, then the tail of its code (the rest of its result object).

    A chunk whose inputs need no JSON escape is formatted as text, in one pass:
    msgspec escapes only control characters, ``"`` and ``\\`` in a string (and
    cannot encode a lone surrogate); inputs free of them are their own JSON
    string bodies, and so are their E.164 forms. Two ``encode`` calls and four
    ``bytes`` concatenations per line were a fifth of a bulk run.
    """
    if _JSON_ESCAPED.search("".join(inputs)) is None and _JSON_ESCAPED.search("".join(numbers)) is None:
        text = [tail.decode("utf-8") for tail in tails]
        return "".join(
            [
                f'{{"input":"{inp}","number":"{num}"{text[code]}\n'
                for inp, num, code in zip(inputs, numbers, codes.tolist(), strict=True)
            ]
        ).encode("utf-8")
    encode = msgspec.json.encode
    return b"".join(
        [
            b'{"input":' + encode(inp) + _NUMBER_FIELD + encode(num) + tails[code] + b"\n"
            for inp, num, code in zip(inputs, numbers, codes.tolist(), strict=True)
        ]
    )


class _Lines(Sequence[str]):
    """A block's lines as text, decoded only when read: ``texts`` where a line is not its own ASCII text."""

    def __init__(self, lines: list[bytes], texts: dict[int, str]) -> None:
        self._lines = lines
        self._texts = texts

    def __len__(self) -> int:
        return len(self._lines)

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[str]: ...
    def __getitem__(self, i: int | slice) -> str | Sequence[str]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        text = self._texts.get(i)
        return text if text is not None else self._lines[i].decode("ascii")


def block_columns(
    resolver: Resolver, lines: list[bytes], scan: LineScan, region: str | None
) -> tuple[Columns, dict[int, str]]:
    """Resolve a block's lines as ``resolve_columns`` would their stripped texts; also those texts not plain.

    The ``+``-and-digits lines (nearly all of a real file) go to the tables as
    the integers the scan read; only the other lines are decoded, stripped and
    put in international form (or read with ``region``), then scanned as text.
    """
    texts: dict[int, str] = {}
    forms: dict[int, str] = {}
    for i in np.flatnonzero(~scan.plain).tolist():
        texts[i] = lines[i].decode("utf-8", "replace").strip()
    other = np.flatnonzero(~scan.plus)
    for i in other.tolist():
        text = texts.get(i)
        if text is None:
            text = lines[i].decode("ascii")
        forms[i] = international_form(text) if region is None else text
    sub, sub_value, sub_digits = resolver.plan.scan(list(forms.values()))
    plus = np.flatnonzero(scan.plus)
    batch = resolver.plan.resolve_scanned(
        _Lines(lines, forms),
        np.concatenate([plus, other[sub]]),
        np.concatenate([scan.value[plus], sub_value]),
        np.concatenate([scan.digits[plus], sub_digits]),
        None if region is None else [region] * len(lines),
    )
    return resolver.columns(_Lines(lines, texts), batch), texts


def _pieces(
    lines: list[bytes],
    scan: LineScan,
    columns: Columns,
    texts: dict[int, str],
    spelled: npt.NDArray[np.bool_],
    spell: Callable[[str], bytes],
) -> tuple[list[bytes], list[bytes], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Each row's input and number as the output spells them (``spell``: a JSON string body, a CSV field).

    ``spelled``: the rows whose input needs ``spell`` (the rest are their own
    bytes). A number is its input's piece where it is the input: a ``+`` line
    whose digits the tables kept as they were, or an input that does not parse.
    Also the pieces' sizes (for ``write_pieces``), from the scan but where replaced.
    """
    inputs = list(lines)  # a copy: the columns' inputs still read the block's lines
    input_sizes = scan.ends - scan.starts
    for i in np.flatnonzero(spelled).tolist():
        text = texts.get(i)
        inputs[i] = spell(text if text is not None else lines[i].decode("ascii"))
        input_sizes[i] = len(inputs[i])
    digits = columns.batch.digits
    second = scan.buffer[np.minimum(scan.starts + 1, len(scan.buffer) - 1)]  # a "+" line's first digit
    as_written = scan.plus & (digits == scan.value) & (second != 48)  # "+0…" is not "+…"
    numbers = list(inputs)
    number_sizes = input_sizes.copy()
    rows = np.flatnonzero((digits != 0) & ~as_written)
    for i, d in zip(rows.tolist(), digits[rows].tolist(), strict=True):
        numbers[i] = b"+%d" % d
        number_sizes[i] = len(numbers[i])
    for i, long in columns.batch.long_e164.items():
        numbers[i] = long.encode("utf-8")
        number_sizes[i] = len(numbers[i])
    return inputs, numbers, input_sizes, number_sizes


@dataclass
class Pieces:
    """A block's output as the pieces to join (``parts``) and each one's size in bytes."""

    parts: list[bytes]
    sizes: npt.NDArray[np.int64]


def format_block(
    resolver: Resolver, block: LineBlock, region: str | None, fmt: OutputFormat, style: StatusStyle
) -> tuple[Pieces, int]:
    """A plain input's block as the pieces of its output lines, and how many of its numbers are valid.

    The pieces joined are the bytes ``format_csv``/``format_jsonl`` write for
    the block's stripped lines (the tests hold them equal): a line is its input,
    its number and the tail of its combination, the tails shared and the inputs
    the block's own bytes where they need no escaping. The general path formats
    a string per line, joins and encodes them: three copies of a 400-byte JSON
    line and a Python call per line; :func:`write_pieces` joins these a run at a time.
    """
    lines = block.lines()
    if not lines:
        return Pieces([], np.zeros(0, dtype=np.int64)), 0
    scan = scan_lines(block.data, MAX_DIGITS)
    columns, texts = block_columns(resolver, lines, scan, region)
    codes, representatives = combinations(columns)
    if fmt == "csv":
        tails = [b"," + csv_tail(columns, i).encode("utf-8") + b"\n" for i in representatives]
        spelled = ~scan.plain | scan.holding(b",")
        inputs, numbers, input_sizes, number_sizes = _pieces(lines, scan, columns, texts, spelled, _csv_bytes)
        first, middle, following = b"", b",", b""
    else:
        checked_at = _now()
        tails = [b'"' + json_tail(columns, i, style, checked_at) + b"\n" for i in representatives]
        inputs, numbers, input_sizes, number_sizes = _pieces(lines, scan, columns, texts, ~scan.plain, _json_body)
        first, middle, following = b'{"input":"', b'","number":"', b'{"input":"'
    ends = [tail + following for tail in tails]
    count = len(lines)
    parts = [middle] * (1 + 4 * count)
    parts[0] = first
    parts[1::4] = inputs
    parts[3::4] = numbers
    parts[4::4] = np.array(ends, dtype=object)[codes].tolist()
    parts[-1] = tails[int(codes[-1])]
    sizes = np.full(len(parts), len(middle), dtype=np.int64)
    sizes[0] = len(first)
    sizes[1::4] = input_sizes
    sizes[3::4] = number_sizes
    sizes[4::4] = np.array([len(end) for end in ends], dtype=np.int64)[codes]
    sizes[-1] = len(parts[-1])
    return Pieces(parts, sizes), int(columns.batch.valid.sum())


def write_pieces(sink: IO[bytes], pieces: list[bytes], sizes: npt.NDArray[np.int64] | None = None) -> None:
    """``sink.write(b"".join(pieces))``, joined and written a run of pieces of some ``WRITE_BYTES`` at a time.

    Joined whole, a 300,000-line block of JSON lines is 130 MB built only to be
    copied to the kernel, and building it (the fresh memory's page faults
    included) costs more than the write. Handed to ``os.writev`` as they are
    (1,024 a call), the kernel's walk over a million small pieces cost a third
    more than writing the same bytes from one buffer. A join of half a megabyte
    at a time is a copy within the CPU's cache into memory the allocator hands
    back run after run (no page faults), and the kernel then copies one buffer.
    ``sizes``: each piece's length (else measured here), to cut the runs. A sink
    that takes part of a buffer (a raw file, a signal) is given the rest.
    """
    if not pieces:
        return
    if sizes is None:
        sizes = np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces))
    ends = np.cumsum(sizes)
    cuts = np.searchsorted(ends, np.arange(WRITE_BYTES, int(ends[-1]), WRITE_BYTES), side="right").tolist()
    start = 0
    for stop in [*cuts, len(pieces)]:
        if stop > start:
            _write_all(sink, b"".join(pieces[start:stop]))
            start = stop


def _write_all(sink: IO[bytes], data: bytes) -> None:
    """``sink.write(data)``, again with the rest where a raw sink took only part of it."""
    done = sink.write(data)
    if done is not None and done >= len(data):  # a buffered sink takes it all (or raises)
        return
    rest = memoryview(data)[done or 0 :]
    while rest:
        written = sink.write(rest)
        if written is None:  # a non-blocking sink that is full: not one this module is given
            raise BlockingIOError("the output would block")
        rest = rest[written:]


def _json_body(text: str) -> bytes:
    """A string's JSON body, as msgspec writes it (without the quotes)."""
    return msgspec.json.encode(text)[1:-1]


def _csv_bytes(text: str) -> bytes:
    return _csv_field(text).encode("utf-8")


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
    checked_at = _now()
    tails = [json_tail(columns, i, style, checked_at) for i in representatives]
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
    then_exit: bool = False,
) -> BulkStats:
    """Resolve every row of ``source`` into ``sink``; ``progress(rows, bytes)`` after each chunk.

    One output row per input line (see ``bulk_input``); the CSV header comes
    first, written once the first chunk has shown the input's shape. Raises
    ``BulkInputError`` on a row the shape rules refuse (earlier chunks are written).

    The cyclic garbage collector is paused while a chunk is read, resolved and
    written, and runs between chunks: a CSV chunk is 100,000 lists (its rows),
    which it would otherwise scan again and again for cycles they cannot form,
    a third of the run's time. Cycles made meanwhile are found at the next pause,
    before the next chunk is resolved: not after the last, whose cycles are left to
    the next collection. (The slow path's refusals, whose tracebacks held a block's
    lines through their frames, no longer make any: ``numbering.reference``.)
    ``then_exit``: the caller ends the process next
    (``numlookup.cli.end``, which frees nothing), so the collector stays paused
    after the last chunk, and what it left is never freed one object at a time:
    the collection that followed a 300,000-line run did that, 20–30 ms.
    """
    stats = BulkStats()
    reader = BulkReader(source, column=column, header=header, delimiter=delimiter)
    started = False
    collecting = gc.isenabled()
    gc.disable()
    try:
        if column is None:
            for block in reader.blocks():
                if started and collecting:
                    gc.collect(1)
                if fmt == "csv" and not started:
                    sink.write(csv_header(reader).encode("utf-8"))
                started = True
                stats.bytes_read += block.consumed
                output, valid = format_block(resolver, block, region, fmt, style)
                write_pieces(sink, output.parts, output.sizes)
                count = block.data.count(b"\n")
                stats.numbers += count
                stats.valid += valid
                if progress is not None:
                    progress(count, block.consumed)
                del block, output
        for chunk in reader.chunks() if column is not None else ():
            if started and collecting:
                gc.collect(1)
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
    finally:
        if collecting and not then_exit:
            gc.enable()
    if fmt == "csv" and not started:  # an empty input: the header alone
        sink.write(csv_header(reader).encode("utf-8"))
    return stats
