"""How a bulk file is read: plain lines or CSV records, a chunk at a time, every line kept.

Why its own module: the shape rules are decided here once, and ``bulk`` only
formats what comes out. Every input line is a row (in a CSV, every record: a
quoted field may hold line ends), a blank one too (its number is ``""``, which
resolves as ``not_a_number``), so the output has exactly as many rows as the
input has lines. Lines end in ``\\n``, ``\\r\\n`` or a lone ``\\r``;
a UTF-8 byte order mark at the start is dropped.

Plain input (one number a line) stays on the fast path: blocks of
``CHUNK_BYTES`` decoded and split in C, one string per line and nothing else.
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

if TYPE_CHECKING:
    from _csv import Reader

    from _typeshed import WriteableBuffer

CHUNK_BYTES = 4 << 20
CHUNK_ROWS = 100_000  # CSV records per chunk at most (small rows)
_BATCH = 4096  # records taken from the csv reader at a time
_QUOTED = re.compile(r'"[^"]*(?:"|$)')
_LINE_END = re.compile(r"\r\n|\r|\n")


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


def detect_delimiter(first_line: str) -> str:
    """``;`` when ``first_line`` has one outside double-quoted fields and no ``,`` there; else ``,``."""
    outside = _QUOTED.sub("", first_line)
    return ";" if ";" in outside and "," not in outside else ","


def _split_lines(text: str) -> list[str]:
    """``text``'s lines without their ends; ``str.splitlines`` would also split on form feeds and U+2028."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if lines[-1] == "":  # text ends with a line end (or is empty): no line after it
        lines.pop()
    return lines


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
            lines = _split_lines(data[:cut].decode("utf-8", "replace"))
            if first:
                first = False
                if lines and lines[0].startswith("\ufeff"):
                    lines[0] = lines[0][1:]
                if self.skip_header and lines:
                    self.header = [lines.pop(0).strip()]
            yield Chunk([line.strip() for line in lines], None, len(block))
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
