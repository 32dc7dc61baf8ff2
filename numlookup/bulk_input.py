"""How a bulk file is read: plain lines or CSV records, a chunk at a time, every line kept.

Why its own module: the shape rules are decided here once, and ``bulk`` only
formats what comes out. Every input line is a row (in a CSV, every record: a
quoted field may hold line ends), a blank one too (its number is ``""``, which
resolves as ``not_a_number``), so the output has exactly as many rows as the
input has lines. Lines end in ``\\n``, ``\\r\\n`` or a lone ``\\r``;
a UTF-8 byte order mark at the start is dropped.

Plain input (one number a line) stays on the fast path: blocks of
``CHUNK_BYTES`` of whole lines (``LineBlock``), kept as bytes; ``scan_lines``
tells, with numpy over the block, which lines are ``+`` and digits (and their
value) and which are their own text, so only the others are ever decoded.
CSV input (``column``) needs the csv module's record reading (quoted delimiters
and newlines), and each row's fields are kept for the output, so it pays a
little Python per row. The delimiter is ``;`` when the first line, outside
double-quoted fields, has a ``;`` and no ``,`` (a spreadsheet export from a
locale whose decimal mark is the comma), else ``,``; a delimiter given wins.
A CSV input has the width of its header (or first record): a shorter row is
padded on output so the lookup's columns line up; a row too short for
``column``, or wider than the first with more than empty fields, stops the read
with the line it starts on, like an import: its number is missing, or shifted
by a delimiter in an unquoted field.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain, islice
from typing import IO, TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from _csv import Reader

    from _typeshed import WriteableBuffer

CHUNK_BYTES = 4 << 20
CHUNK_ROWS = 100_000  # CSV records per chunk at most (small rows)
_BATCH = 4096  # records taken from the csv reader at a time
_QUOTED = re.compile(r'"[^"]*(?:"|$)')
_LINE_END = re.compile(r"\r\n|\r|\n")
_BOM = "\ufeff".encode()
# For a 64-bit word of eight bytes: _KEEP[j] keeps its last j bytes (the highest, little-endian), the digits.
_KEEP = np.array([((1 << 64) - 1) ^ ((1 << (8 * (8 - j))) - 1) for j in range(9)], dtype=np.uint64)
_ZEROS = np.uint64(0x3030303030303030)  # "00000000"
_SIXES = np.uint64(0x0606060606060606)
_HIGH_NIBBLES = np.uint64(0xF0F0F0F0F0F0F0F0)
_LOW_NIBBLES = np.uint64(0x0F0F0F0F0F0F0F0F)


class BulkInputError(ValueError):
    """The input cannot be read as asked: a row without the column, a CSV the csv module rejects."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """Consecutive rows of the input.

    ``numbers`` is what each row looks up (stripped; ``""`` for a blank line).
    ``rows`` holds, for CSV input only, each row's fields as read (``[]`` for a
    blank line). ``consumed`` is the bytes of input read for it (progress). The
    reader keeps no reference to a chunk it has handed out.
    """

    numbers: list[str]
    rows: list[list[str]] | None
    consumed: int


@dataclass(frozen=True, slots=True)
class LineBlock:
    """Consecutive lines of a plain input, as read: ``data`` is whole lines, each ending in ``\\n``.

    Line ends are made ``\\n`` (``\\r\\n`` and a lone ``\\r`` are one too), the
    byte order mark and a header line are gone; nothing is decoded or stripped
    yet: ``numbers`` does that, :func:`scan_lines` tells which lines need it.
    ``consumed`` is the bytes of input read for it (progress).
    """

    data: bytes
    consumed: int

    def lines(self) -> list[bytes]:
        """Each line's bytes, without its end: one ``bytes.split`` in C."""
        return self.data.split(b"\n")[:-1]

    def numbers(self) -> list[str]:
        """Each line decoded (a bad UTF-8 sequence as U+FFFD) and stripped: ``Chunk.numbers``."""
        return [line.strip() for line in self.data.decode("utf-8", "replace").split("\n")[:-1]]


@dataclass(frozen=True, slots=True)
class LineScan:
    """What a block's bytes say of each line, found with numpy over the whole block, no string per line.

    ``plain``: every byte is printable ASCII (space to ``~``) other than ``"`` and
    ``\\``, and the line neither starts nor ends with a space, so its bytes are its
    stripped text and their own JSON string body. ``plus``: the line is ``+``
    followed by 1 to ``max_digits`` ASCII digits (an E.164 number as written),
    with ``value`` the digits as an integer (0 on other lines) and ``digits``
    their count. ``starts``/``ends``: where each line starts and where its ``\\n`` is.
    """

    buffer: npt.NDArray[np.uint8]
    starts: npt.NDArray[np.int64]
    ends: npt.NDArray[np.int64]
    plain: npt.NDArray[np.bool_]
    plus: npt.NDArray[np.bool_]
    value: npt.NDArray[np.int64]
    digits: npt.NDArray[np.int64]

    def holding(self, byte: bytes) -> npt.NDArray[np.bool_]:
        """Per line: does it hold ``byte`` (one byte)?"""
        return self.count(self.buffer == ord(byte)) > 0

    def count(self, mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
        """Per line, the bytes of it (its ``\\n`` included) where ``mask`` holds."""
        if not len(self.starts):
            return np.zeros(0, dtype=np.int64)
        # Every line holds at least its "\n", so no segment of reduceat is empty.
        return np.add.reduceat(mask, self.starts, dtype=np.int64)


def scan_lines(data: bytes, max_digits: int) -> LineScan:
    """:class:`LineScan` of a :class:`LineBlock`'s ``data``: a few passes of numpy over the block, none per line.

    A ``+`` line's digits are read eight at a time: the 16 bytes before its line
    end, as two little-endian 64-bit words, checked to be digits and turned into
    a number with three multiply-and-shift steps (SWAR), the bytes before its
    digits masked off; ``max_digits`` is at most 15 (the ``+`` is one of the 16).
    """
    assert max_digits <= 15
    buffer = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buffer == 10)
    count = len(ends)
    starts = np.zeros(count, dtype=np.int64)
    starts[1:] = ends[:-1] + 1
    length = ends - starts
    plain = np.ones(count, dtype=np.bool_)
    plain[np.searchsorted(ends, np.flatnonzero(_odd(buffer)))] = False
    first = buffer[starts]  # an empty line's is its "\n"
    plain &= (first != 32) & (buffer[np.where(length > 0, ends - 1, ends)] != 32)
    plus = np.zeros(count, dtype=np.bool_)
    value = np.zeros(count, dtype=np.int64)
    digits = np.zeros(count, dtype=np.int64)
    rows = np.flatnonzero((first == 43) & (length >= 2) & (length <= max_digits + 1))
    if len(rows):
        padded = np.concatenate([np.zeros(16, dtype=np.uint8), buffer])
        # The eight bytes from each offset as one word (unaligned; read in place), so that a line's
        # buffer[end-16:end] is the words at end and end + 8 of the padded buffer: two gathers.
        word_at = np.ndarray((len(padded) - 7,), dtype="<u8", buffer=padded, strides=(1,))
        at = ends[rows]
        n = length[rows] - 1
        high = _digit_words(word_at[at], _KEEP[np.clip(n - 8, 0, 8)])
        low = _digit_words(word_at[at + 8], _KEEP[np.minimum(n, 8)])
        ok = (high >= 0) & (low >= 0)
        rows = rows[ok]
        plus[rows] = True
        value[rows] = high[ok] * 100_000_000 + low[ok]
        digits[rows] = n[ok]
    return LineScan(buffer, starts, ends, plain, plus, value, digits)


def _odd(buffer: npt.NDArray[np.uint8]) -> npt.NDArray[np.bool_]:
    """The bytes that make a line not plain: controls but ``\\n``, DEL and beyond ASCII, ``"`` and ``\\``.

    By comparisons (``b - 32`` wraps below the space), not a 256-entry table:
    numpy gathers a byte at a time, where a comparison runs a vector of them,
    and the gather was a sixth of the scan.
    """
    odd: npt.NDArray[np.bool_] = ((buffer - 32) > 94) ^ (buffer == 10)  # "\n" is the one byte below 32 allowed
    odd |= buffer == 34
    odd |= buffer == 92
    return odd


def _digit_words(word: npt.NDArray[np.uint64], keep: npt.NDArray[np.uint64]) -> npt.NDArray[np.int64]:
    """Eight ASCII bytes per word (the first one lowest), those ``keep`` leaves out read as "0": their number, or -1.

    -1 where a byte kept is not a digit. The SWAR steps: pairs (``a*10 + b``), then
    fours (``ab*100 + cd``), then the eight (``abcd*10000 + efgh``).
    """
    word = (word & keep) | (_ZEROS & ~keep)
    digit = ((word & _HIGH_NIBBLES) == _ZEROS) & (((word + _SIXES) & _HIGH_NIBBLES) == _ZEROS)
    word = word & _LOW_NIBBLES
    word = (word * np.uint64(10) + (word >> np.uint64(8))) & np.uint64(0x00FF00FF00FF00FF)
    word = (word * np.uint64(100) + (word >> np.uint64(16))) & np.uint64(0x0000FFFF0000FFFF)
    word = (word * np.uint64(10000) + (word >> np.uint64(32))) & np.uint64(0xFFFFFFFF)
    return np.where(digit, word.astype(np.int64), -1)


def detect_delimiter(first_line: str) -> str:
    """``;`` when ``first_line`` has one outside double-quoted fields and no ``,`` there; else ``,``."""
    outside = _QUOTED.sub("", first_line)
    return ";" if ";" in outside and "," not in outside else ","


def _blank(row: list[str]) -> bool:
    """A blank line (``[]``), or one of spaces only: a row all the same, with an empty number."""
    return not row or (len(row) == 1 and not row[0].strip())


def _line_ends(row: list[str]) -> int:
    """Line ends inside a record's quoted fields: how many more lines than one it spans."""
    joined = "".join(row)
    return len(_LINE_END.findall(joined)) if "\n" in joined or "\r" in joined else 0


def _take(reader: Reader) -> list[list[str]]:
    """The next ``_BATCH`` records; what the csv module rejects is a ``BulkInputError`` naming the line."""
    try:
        return list(islice(reader, _BATCH))
    except csv.Error as exc:
        raise BulkInputError(f"line {reader.line_num}: {exc} (an unbalanced quote?)") from None


class _Counted(io.RawIOBase):
    """The source as a raw stream that counts the bytes read through it (progress), and never closes it."""

    def __init__(self, source: IO[bytes]) -> None:
        self.source = source
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self.source.read(len(view))
        view[: len(data)] = data
        self.count += len(data)
        return len(data)


class BulkReader:
    """Reads ``source`` in chunks; after the first chunk ``header`` and ``width`` say the file's shape.

    ``header``: with ``header=True``, the first line's fields (plain input: the
    line itself), else None. ``width``: CSV input's column count, the header's or
    else the first record's (blank lines do not count); shorter rows are padded
    to it on output so the lookup's columns line up. ``delimiter``: the one used.
    """

    def __init__(
        self, source: IO[bytes], *, column: int | None = None, header: bool = False, delimiter: str | None = None
    ) -> None:
        self.source = source
        self.column = column
        self.skip_header = header
        self.delimiter = delimiter or ","
        self._given_delimiter = delimiter
        self.header: list[str] | None = None
        self.width = 0
        self._width_line = 0  # the line whose record set the width (0: none did)

    def chunks(self) -> Iterator[Chunk]:
        return self._plain() if self.column is None else self._csv(self.column)

    def _plain(self) -> Iterator[Chunk]:
        for block in self.blocks():
            yield Chunk(block.numbers(), None, block.consumed)

    def blocks(self) -> Iterator[LineBlock]:
        """Plain input (no ``column``) as blocks of whole lines, in bytes: what ``chunks`` decodes and strips."""
        assert self.column is None, "a CSV input is read as records: chunks()"
        rest = b""
        first = True
        while True:
            block = self.source.read(CHUNK_BYTES)
            data = rest + block
            if block:
                # Cut after the last line end; a final \r waits for the next block (it may start with \n).
                cut = max(data.rfind(b"\n"), data.rfind(b"\r", 0, len(data) - 1)) + 1
                if cut == 0:
                    rest = data
                    continue
            elif not data:
                break
            else:
                cut = len(data)
            rest = data[cut:]
            lines = data[:cut]
            if b"\r" in lines:
                lines = lines.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            if lines and not lines.endswith(b"\n"):  # the input's last line, without its end
                lines += b"\n"
            if first:
                first = False
                if lines.startswith(_BOM):
                    lines = lines[len(_BOM) :]
                if self.skip_header and lines:
                    end = lines.index(b"\n") + 1
                    self.header = [lines[:end].decode("utf-8", "replace").strip()]
                    lines = lines[end:]
            yield LineBlock(lines, len(block))
            if not block:
                break

    def _shaped(self, row: list[str], start: int, column: int) -> list[str]:
        """A non-blank record checked against ``column`` and the width (which the first one sets)."""
        if len(row) <= column:
            plural = "" if len(row) == 1 else "s"
            raise BulkInputError(
                f"line {start} has {len(row)} column{plural}; --column {column} needs at least {column + 1}"
            )
        if not self.width:
            self.width, self._width_line = len(row), start
        elif len(row) > self.width:
            return self._fit(row, start)
        return row

    def _fit(self, row: list[str], start: int) -> list[str]:
        """A row wider than the first: its extra fields dropped if empty (a trailing delimiter), else an error.

        More fields than the header (or the first row) means a delimiter inside an
        unquoted field, which shifts the row's fields, the number's too.
        """
        if not any(row[self.width :]):
            return row[: self.width]
        if not self._width_line:  # the width was a guess (only blank lines came first): keep every field
            return row
        raise BulkInputError(
            f"line {start} has {len(row)} columns, line {self._width_line} has {self.width}:"
            f" a {self.delimiter!r} in an unquoted field?"
        )

    def _csv(self, column: int) -> Iterator[Chunk]:
        """Records in batches: a batch whose rows all have the width is taken whole, in C; others row by row."""
        counted = _Counted(self.source)
        text = io.TextIOWrapper(io.BufferedReader(counted, 1 << 16), encoding="utf-8-sig", errors="replace", newline="")
        first_line = text.readline()
        if self._given_delimiter is None:
            self.delimiter = detect_delimiter(first_line)
        reader = csv.reader(chain([first_line], text) if first_line else iter(()), delimiter=self.delimiter)
        numbers: list[str] = []
        rows: list[list[str]] = []
        mark = 0
        line = 0  # lines read before the batch
        while True:
            batch = _take(reader)
            if not batch:
                break
            if line == 0 and self.skip_header:
                head = batch.pop(0)
                line = 1 + _line_ends(head)
                self.header = [] if _blank(head) else self._shaped(head, 1, column)
            if self.width and set(map(len, batch)) == {self.width}:  # the common case: no per-row work
                numbers += [row[column].strip() for row in batch]
                rows += batch
            else:
                for row in batch:
                    start = line + 1
                    line = start + _line_ends(row)
                    if _blank(row):
                        numbers.append("")
                        rows.append([])
                    else:
                        row = self._shaped(row, start, column)
                        numbers.append(row[column].strip())
                        rows.append(row)
            line = reader.line_num
            if len(rows) >= CHUNK_ROWS or counted.count - mark >= CHUNK_BYTES:
                self.width = self.width or column + 1  # only blank lines so far
                ready = [Chunk(numbers, rows, counted.count - mark)]
                numbers, rows, mark = [], [], counted.count
                yield ready.pop()  # held by the caller alone: its rows go when the caller is done with them
        self.width = self.width or column + 1
        if rows or counted.count > mark:
            yield Chunk(numbers, rows, counted.count - mark)
