"""A processed chunk's results, stored once and served by any node as CSV or JSON lines.

What is stored is what the bulk engine's formatters work from: per row its input
and its number, and a code naming its *tail* (everything after the number: the
rest of the CSV line, or of the JSON result object). Rows of one combination
(validity, type, networks, porting) share one tail, as in ``numlookup lookup
--input``; each live-routed number has tails of its own. That keeps a chunk
small (JSON lines are ~400 bytes a row, their template ~10) and cheap to build,
and a download renders the lines with the CLI's own ``render_csv`` and
``render_jsonl``: for an offline job they are byte for byte the CLI's lines
(JSON lines but for ``checkedAt``, which is the job's submit time: the moment its
numbers were resolved).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Literal

import msgspec
import numpy as np

from numlookup.bulk import (
    CSV_HEADER,
    combinations,
    csv_tail,
    json_tail,
    numbers_column,
    render_csv,
    render_jsonl,
    result_tail,
)
from numlookup.live.service import LiveResult
from numlookup.numbering.resolver import Columns
from numlookup.results import number_result
from numlookup.status import StatusStyle

ResultFormat = Literal["csv", "jsonl"]
RESULT_FORMATS: tuple[ResultFormat, ...] = ("csv", "jsonl")
MEDIA_TYPES: dict[ResultFormat, str] = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson"}
LEVEL = 1


class _Results(msgspec.Struct, array_like=True):
    inputs: list[str]
    numbers: list[str]
    codes: bytes  # int32 per row: index into the tails
    csv_tails: list[str]
    json_tails: list[bytes]


def build(columns: Columns, style: StatusStyle, checked_at: str, live: Mapping[int, LiveResult]) -> bytes:
    """The stored results of a chunk; ``live`` maps a row to its number's live result (rows asked live)."""
    codes, representatives = combinations(columns)
    codes = codes.astype(np.int32)
    csv_tails = [csv_tail(columns, i) for i in representatives]
    json_tails = [json_tail(columns, i, style, checked_at) for i in representatives]
    shared: dict[int, int] = {}  # one tail per live result, for a number that is in the chunk twice
    for row, result in live.items():
        code = shared.get(id(result))
        if code is None:
            code = shared[id(result)] = len(csv_tails)
            csv_tails.append(
                csv_tail(columns, row, ported_known=result.ported_known, ported_network=result.ported_network)
            )
            json_tails.append(result_tail(number_result(columns.resolution(row), style, checked_at, result)))
        codes[row] = code
    packed = _Results(list(columns.inputs), numbers_column(columns), codes.tobytes(), csv_tails, json_tails)
    return zlib.compress(msgspec.msgpack.encode(packed), LEVEL)


def render(data: bytes, fmt: ResultFormat) -> bytes:
    """A stored chunk's lines in ``fmt`` (no CSV header: that is the download's first line)."""
    packed = msgspec.msgpack.decode(zlib.decompress(data), type=_Results)
    codes = np.frombuffer(packed.codes, dtype=np.int32)
    if fmt == "csv":
        return render_csv(packed.inputs, packed.numbers, packed.csv_tails, codes).encode("utf-8")
    return render_jsonl(packed.inputs, packed.numbers, packed.json_tails, codes)


def header(fmt: ResultFormat) -> bytes:
    return CSV_HEADER.encode() if fmt == "csv" else b""
