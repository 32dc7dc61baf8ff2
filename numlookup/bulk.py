"""Bulk lookup of a file: numbers in, one result line per number out, in chunks.

Memory stays flat for files of any size: the input is read, resolved and written
a chunk at a time. The hot path never builds an object per number: the resolver
answers in arrays, each distinct (status, type, network) combination is
formatted once per chunk, and a line is its input, its E.164 form and that
pre-formatted tail.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Literal

import msgspec
import numpy as np

from numlookup.numbering.layout import REASONS, TYPE_NAMES
from numlookup.numbering.models import Network
from numlookup.numbering.resolver import Columns, Resolver
from numlookup.results import NumberResult, number_result
from numlookup.status import StatusStyle

OutputFormat = Literal["csv", "jsonl"]
CHUNK_BYTES = 4 << 20
CSV_HEADER = (
    "input,number,valid,reason,type,region,country_code,country_prefix,"
    "original_mccmnc,original_network,ported,current_mccmnc,current_network\n"
)
_NEEDS_QUOTES = frozenset(',"\r\n')
_NUMBER_KEY = b'{"number":'
_NUMBER_FIELD = b',"number":'


@dataclass
class BulkStats:
    numbers: int = 0
    valid: int = 0
    bytes_read: int = 0


def read_chunks(raw: IO[bytes], column: int | None = None, header: bool = False) -> Iterator[tuple[list[str], int]]:
    """``(numbers, bytes consumed)`` chunks of the input: one number per line, or column ``column`` of a CSV."""
    rest = b""
    first = True
    while True:
        block = raw.read(CHUNK_BYTES)
        if not block:
            break
        data = rest + block
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            rest = data
            continue
        rest = data[cut:]
        lines = data[:cut].decode("utf-8", "replace").splitlines()
        if first and header:
            lines = lines[1:]
        first = False
        yield _pick(lines, column), len(block)
    if rest:
        lines = rest.decode("utf-8", "replace").splitlines()
        if first and header:
            lines = lines[1:]
        yield _pick(lines, column), 0


def _pick(lines: list[str], column: int | None) -> list[str]:
    if column is None:
        return [line.strip() for line in lines if line.strip()]
    picked = []
    for row in csv.reader(lines):
        if row:
            picked.append(row[column].strip() if column < len(row) else "")
    return picked


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
    if "," in joined or '"' in joined or "\r" in joined:  # rare: quote only then, and only what needs it
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


def lookup_file(
    resolver: Resolver,
    source: IO[bytes],
    sink: IO[bytes],
    *,
    fmt: OutputFormat = "csv",
    region: str | None = None,
    column: int | None = None,
    header: bool = False,
    style: StatusStyle = "seed",
    progress: Callable[[int, int], None] | None = None,
) -> BulkStats:
    """Resolve every number of ``source`` into ``sink``; ``progress(numbers, bytes)`` after each chunk."""
    stats = BulkStats()
    if fmt == "csv":
        sink.write(CSV_HEADER.encode())
    for numbers, consumed in read_chunks(source, column, header):
        if not numbers:
            stats.bytes_read += consumed
            continue
        columns = resolver.resolve_columns(numbers, region)
        if fmt == "csv":
            sink.write(format_csv(columns).encode("utf-8"))
        else:
            sink.write(format_jsonl(columns, style))
        stats.numbers += len(numbers)
        stats.valid += int(columns.batch.valid.sum())
        stats.bytes_read += consumed
        if progress is not None:
            progress(len(numbers), consumed)
    return stats
