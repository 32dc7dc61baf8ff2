"""Our ported-number CSV read column-wise: pyarrow parses blocks of lines, whole columns are checked at once.

Why: read line by line (``csv.reader``, a regex and an object per row) a million
rows take seconds and a hundred million minutes. Here the file is read in
blocks of whole lines; pyarrow's CSV parser splits a block into string columns
(quoting off and one thread, so each row is one physical line and its number is
known), and the checks the per-line reader makes — digits and lengths of the
number, the MCC/MNC, a delta's action — run over whole columns (numpy over
pyarrow's buffers; the few distinct MCC/MNCs and actions through the per-line
reader's own rules).

The columns only say yes. A row they do not accept, and every line they cannot
speak for — line 1 (it may name the columns), a line holding a quote, a NUL or
a CR before its end, a line of another field count — goes through
``formats.ported_line``, the per-line reader itself, so a bad line gets the very
line number and reason it always got, a comment or a blank line is skipped as
before, and the columns never accept what it would refuse. A quote that opens a
field running past its line (csv lets a field hold a newline) hands the rest of
the file to the per-line reader. A line that does not decode as UTF-8 stops the
import once every line before it has been read, as before.

The result is ``PortedBlock``s with the bad lines between them, in line order,
for ``ported.build``: the same records the per-line reader gives, as arrays.
"""

from __future__ import annotations

import io
from collections import Counter, deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from numlookup.datasets import formats
from numlookup.datasets.formats import FormatError, LineError, PortedRecord, RecordContinues
from numlookup.datasets.ported import REMOVE, PortedBlock, blocks

if TYPE_CHECKING:
    import pyarrow as pa

CHUNK_BYTES = 8 << 20  # a block of whole lines: ~400,000 rows; its arrays are freed once it is built
_WORKERS = 2  # threads that parse and check blocks (the machine this was measured on has two cores)
_AHEAD = 3  # blocks read and in work at once: one more than the workers, so neither waits for the reader
_SAMPLE_BYTES = 1 << 12  # read to guess a block's field count
_REGROUP = 256  # rows of another field count worth a columnar pass of their own
_BOM = b"\xef\xbb\xbf"
_SPECIAL = np.zeros(256, dtype=bool)  # bytes after which a line is not simply its fields joined by commas
_SPECIAL[[0x00, 0x0D, 0x22]] = True  # NUL, CR (fine right before LF), the quote
_PLUS, _ZERO = ord("+"), ord("0")
_POW10 = np.array([10**i for i in range(19)], dtype=np.int64)
# Field counts the columns read, and which field holds the number and the MCC/MNC (-1: none).
_FULL = {2: (0, 1), 3: (0, 1)}  # number,mccmnc[,ported_at]
_DELTA = {2: (1, -1), 3: (1, 2), 4: (1, 2)}  # action,number[,mccmnc[,ported_at]]
_ADD, _REMOVE_ROW = 1, 2


def read_ported_csv(raw: IO[bytes], *, delta: bool = False) -> Iterator[PortedBlock | LineError]:
    """The blocks and bad lines of our ported-number CSV (UTF-8, a BOM allowed), in line order.

    Blocks are read in order on the caller's thread and parsed and checked on
    ``_WORKERS`` threads (pyarrow and numpy let go of the GIL while they work),
    ``_AHEAD`` at a time; their results come out in line order, and what a block
    decides (a handover to the per-line reader, an error that stops the import)
    takes effect exactly where it did when blocks were read one after the other:
    the blocks read ahead of it are dropped unread and their bytes go to the
    per-line reader.

    The first blocks are read and handed to the workers now, before the first
    item is asked for: while the caller gets ready (imports the database layer,
    opens the database) they are being parsed. Every error still comes out of
    the iterator, at its place in line order.
    """
    return _Reader(raw, delta).items()


class _Reader:
    """The blocks in work, in line order, each with its bytes as read (a handover gives them back)."""

    def __init__(self, raw: IO[bytes], delta: bool) -> None:
        self.delta = delta
        self.arrow = _Arrow()
        self.chunks = _Chunks(raw)
        self.source = iter(self.chunks)
        self.pool = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="ported-csv")
        self.ahead: deque[tuple[bytes, Future[_Chunk]]] = deque()
        self._submit(_AHEAD)

    def _submit(self, count: int) -> None:
        """Read up to ``count`` more blocks and hand them to the workers."""
        for _ in range(count):
            read = next(self.source, None)
            if read is None:
                return
            first, buf = read
            self.ahead.append((buf, self.pool.submit(_checked, first, buf, self.delta, self.arrow)))

    def items(self) -> Iterator[PortedBlock | LineError]:
        try:
            while self.ahead:
                chunk = self.ahead.popleft()[1].result()
                yield from chunk.results
                if chunk.handover is not None:
                    line, offset = chunk.handover
                    unread = [chunk.buf[offset:], *(buf for buf, _ in self.ahead)]
                    self.ahead.clear()
                    # The BOM is gone already: decode the rest as plain UTF-8 (the same codec, by the same name).
                    rest = formats.text_stream(self.chunks.rest(b"".join(unread)), "utf-8", first_line=line)
                    yield from blocks(formats.read_ported_csv(rest, delta=self.delta, first_line=line))
                    return
                if chunk.failure is not None:
                    raise chunk.failure
                if chunk.undecodable is not None:
                    raise chunk.undecodable
                self._submit(1)
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _checked(first: int, buf: bytes, delta: bool, arrow: _Arrow) -> _Chunk:
    """One block read through (on a worker thread): its results, and what it decided, are on the chunk."""
    chunk = _Chunk(first, buf.removeprefix(_BOM) if first == 1 else buf, delta, arrow)
    chunk.results = list(chunk.items())
    return chunk


class _Chunks:
    """``raw`` in blocks of whole lines, each with the number of its first line."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.pending = bytearray()  # the start of a line whose end is not read yet

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        line = 1
        while data := self.raw.read(CHUNK_BYTES):
            cut = data.rfind(b"\n") + 1
            if cut == 0:  # no line ends here
                self.pending += data
                continue
            chunk = b"".join((self.pending, memoryview(data)[:cut]))  # one copy
            self.pending = bytearray(memoryview(data)[cut:])
            yield line, chunk
            line += _newlines(chunk)
        if self.pending:
            last, self.pending = bytes(self.pending), bytearray()
            yield line, last

    def rest(self, head: bytes) -> Iterator[bytes]:
        """The file's lines from ``head`` (the unread end of the current block) to its end."""
        yield from io.BytesIO(head)
        if self.pending:
            start, self.pending = bytes(self.pending), bytearray()
            yield start + self.raw.readline()
        yield from self.raw


@dataclass(frozen=True, slots=True)
class _Piece:
    """Whole lines the columns can read; ``lines`` numbers them, or they run on from ``first``."""

    data: bytes
    first: int
    count: int  # how many lines
    lines: npt.NDArray[np.int64] | None = None

    def line_of(self, rows: npt.NDArray[np.intp]) -> npt.NDArray[np.int64]:
        return (self.first + rows).astype(np.int64) if self.lines is None else self.lines[rows]


class _Arrow:
    """pyarrow, imported on the first import that needs it: other commands do not pay its start-up."""

    def __init__(self) -> None:
        import pyarrow as pa
        import pyarrow._compute as compute
        import pyarrow.csv as pa_csv

        self.pa, self.compute, self.csv = pa, compute, pa_csv

    # pyarrow's compute kernels called by name, as ``pyarrow.compute``'s wrappers call them (same kernels, same
    # default options), without importing that module: it builds a Python wrapper of every kernel, ~50 ms.

    def cast_int64(self, column: pa.Array) -> pa.Array:
        """``pyarrow.compute.cast(column, pa.int64())``: a safe cast, refusing what is not an integer."""
        return self.compute.call_function("cast", [column], self.compute.CastOptions.safe(self.pa.int64()))

    def ltrim(self, column: pa.Array, characters: str) -> pa.Array:
        """``pyarrow.compute.utf8_ltrim``."""
        return self.compute.call_function("utf8_ltrim", [column], self.compute.TrimOptions(characters))

    def filter(self, column: pa.Array, mask: pa.Array) -> pa.Array:
        """``pyarrow.compute.filter``."""
        return self.compute.call_function("filter", [column, mask])

    def take(self, column: pa.ChunkedArray, rows: pa.Array) -> pa.ChunkedArray:
        """``column.take(rows)``."""
        return self.compute.call_function("take", [column, rows])

    def dictionary_encode(self, column: pa.Array) -> pa.DictionaryArray:
        """``pyarrow.compute.dictionary_encode``."""
        return self.compute.call_function("dictionary_encode", [column])

    def parse(self, data: bytes, fields: int, lines: int) -> tuple[pa.Table, list[tuple[int, str]]] | None:
        """``data`` as ``fields`` string columns, and the rows of another field count (row number, text).

        None if pyarrow cannot read its ``lines`` lines a row for a line.
        """
        rejected: list[tuple[int, str]] = []

        def other_count(row: Any) -> str:
            rejected.append((row.number, row.text))
            return "skip"

        names = [f"f{i}" for i in range(fields)]
        try:
            table = self.csv.read_csv(
                self.pa.BufferReader(data),
                read_options=self.csv.ReadOptions(
                    column_names=names,
                    use_threads=False,  # one thread: rows of another field count keep their row numbers
                    block_size=max(len(data), 1 << 20),  # one block, so each column comes in one piece
                ),
                parse_options=self.csv.ParseOptions(
                    delimiter=",",
                    quote_char=False,
                    escape_char=False,
                    newlines_in_values=False,
                    ignore_empty_lines=False,  # a blank line stays a row, so rows stay lines
                    invalid_row_handler=other_count,
                ),
                convert_options=self.csv.ConvertOptions(
                    column_types=dict.fromkeys(names, self.pa.string()),
                    check_utf8=False,  # checked already, with the line that fails
                    strings_can_be_null=False,
                    null_values=[],
                ),
            )
        except self.pa.ArrowInvalid:
            return None
        if table.num_rows + len(rejected) != lines or any(number is None for number, _ in rejected):
            return None
        return table, rejected


class _Chunk:
    """One block of lines: its columns, its odd lines through the per-line reader, merged in line order."""

    def __init__(self, first: int, buf: bytes, delta: bool, arrow: _Arrow) -> None:
        self.first, self.buf, self.delta, self.arrow = first, buf, delta, arrow
        self.shapes = _DELTA if delta else _FULL
        self.handover: tuple[int, int] | None = None  # (line, byte offset): the per-line reader reads on from it
        self.undecodable: FormatError | None = None  # raised once the lines before it are read
        self.failure: FormatError | None = None  # a line csv itself refuses (a CR inside it): raised the same way
        self.names: list[str] = []
        self.name_index: dict[str, int] = {}
        self.parts: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int32]]] = []
        self.odd: list[tuple[int, str, int]] = []  # (line, text, byte offset or -1) for the per-line reader
        self.results: list[PortedBlock | LineError] = []  # what ``items`` gave, once a worker has read it

    def items(self) -> Iterator[PortedBlock | LineError]:
        buf = self._decodable(self.buf)
        for piece in self._pieces(buf, self.first, 0):
            self._read(piece, regroup=True)
        return self._merged()

    def _decodable(self, buf: bytes) -> bytes:
        """``buf`` up to its first line that is not UTF-8, whose error is kept for after the lines before it."""
        if buf.isascii():
            return buf
        try:
            buf.decode("utf-8")
            return buf
        except UnicodeDecodeError as exc:
            start = buf.rfind(b"\n", 0, exc.start) + 1
            stop = buf.find(b"\n", exc.start)
            line = self.first + buf.count(b"\n", 0, start)
            try:  # the reason the per-line reader gives: its line decoded alone
                buf[start : len(buf) if stop < 0 else stop + 1].decode("utf-8")
                self.undecodable = formats.undecodable(line, "utf-8", exc)
            except UnicodeDecodeError as alone:
                self.undecodable = formats.undecodable(line, "utf-8", alone)
            return buf[:start]

    def _pieces(self, buf: bytes, first: int, base: int) -> list[_Piece]:
        """The lines of ``buf`` the columns can read; the others go to ``self.odd``."""
        if not buf:
            return []
        if first == 1:  # a header, or not: the per-line reader decides
            stop = buf.find(b"\n") + 1 or len(buf)
            self.odd.append((1, buf[:stop].decode("utf-8"), base))
            return self._pieces(buf[stop:], 2, base + stop)
        if b'"' not in buf and b"\x00" not in buf and (b"\r" not in buf or buf.count(b"\r") == buf.count(b"\r\n")):
            return [_Piece(buf, first, _newlines(buf) + (0 if buf.endswith(b"\n") else 1))]
        data = np.frombuffer(buf, dtype=np.uint8)
        stops = np.flatnonzero(data == 0x0A) + 1
        if len(stops) == 0 or stops[-1] != len(data):
            stops = np.append(stops, len(data))
        starts = np.concatenate([np.zeros(1, dtype=stops.dtype), stops[:-1]])
        special = np.flatnonzero(_SPECIAL[data])
        after = data[np.minimum(special + 1, len(data) - 1)]
        line_end_cr = (data[special] == 0x0D) & ((special + 1 == len(data)) | (after == 0x0A))
        odd = np.zeros(len(stops), dtype=bool)
        odd[np.searchsorted(stops, special[~line_end_cr], side="right")] = True
        for i in np.flatnonzero(odd).tolist():
            self.odd.append((first + i, buf[starts[i] : stops[i]].decode("utf-8"), base + int(starts[i])))
        clean = ~odd
        if not clean.any():
            return []
        kept = data[np.repeat(clean, stops - starts)].tobytes()
        lines = first + np.flatnonzero(clean).astype(np.int64)
        return [_Piece(kept, first, len(lines), lines)]

    def _read(self, piece: _Piece, regroup: bool, fields: int | None = None) -> None:
        """The piece's rows through the columns; rows they do not accept go to the per-line reader."""
        while piece.data.startswith(_BOM):  # pyarrow would skip it, as at the start of a file: not ours to skip
            stop = piece.data.find(b"\n") + 1 or len(piece.data)
            self.odd.append((int(piece.line_of(np.zeros(1, dtype=np.intp))[0]), piece.data[:stop].decode("utf-8"), -1))
            lines = piece.lines[1:] if piece.lines is not None else None
            piece = _Piece(piece.data[stop:], piece.first + 1, piece.count - 1, lines)
        if not piece.data:
            return
        count = fields or self._field_count(piece.data)
        parsed = self.arrow.parse(piece.data, count, piece.count)
        if parsed is None:
            self._all_odd(piece)
            return
        table, rejected = parsed
        rows = np.arange(table.num_rows)
        if rejected:
            numbers = np.array([number for number, _ in rejected], dtype=np.intp) - 1
            in_table = np.ones(table.num_rows + len(rejected), dtype=bool)
            in_table[numbers] = False
            rows = np.flatnonzero(in_table)
            self._other_counts(piece.line_of(numbers), [text for _, text in rejected], regroup)
        if table.num_rows:
            self._columns(table, count, piece.line_of(rows))

    def _all_odd(self, piece: _Piece) -> None:
        texts = piece.data.decode("utf-8").split("\n")[: piece.count]
        for line, text in zip(piece.line_of(np.arange(len(texts))).tolist(), texts, strict=True):
            self.odd.append((line, text, -1))

    def _field_count(self, data: bytes) -> int:
        """The commonest field count readable by the columns among the piece's first lines."""
        sample = data[:_SAMPLE_BYTES].split(b"\n")
        counts = Counter(line.count(b",") + 1 for line in sample[:-1] or sample)
        readable = [count for count, _ in counts.most_common() if count in self.shapes]
        return readable[0] if readable else min(self.shapes)

    def _other_counts(self, lines: npt.NDArray[np.int64], texts: list[str], regroup: bool) -> None:
        """Rows of another field count: many of one count get a columnar pass; the rest go one by one."""
        read = np.zeros(len(texts), dtype=bool)
        if regroup and len(texts) > _REGROUP:
            groups: dict[int, list[int]] = {}
            for i, text in enumerate(texts):
                groups.setdefault(text.count(",") + 1, []).append(i)
            for count, members in groups.items():
                if count in self.shapes and len(members) > _REGROUP:
                    chosen = np.array(members, dtype=np.intp)
                    data = ("\n".join(texts[i] for i in members) + "\n").encode("utf-8")
                    self._read(_Piece(data, 0, len(members), lines[chosen]), regroup=False, fields=count)
                    read[chosen] = True
        for i in np.flatnonzero(~read).tolist():
            self.odd.append((int(lines[i]), texts[i], -1))

    def _columns(self, table: pa.Table, count: int, lines: npt.NDArray[np.int64]) -> None:
        """Accept the rows whose fields pass the per-line reader's checks, read as whole columns."""
        pa = self.arrow.pa
        columns = [table.column(i).combine_chunks() for i in range(count)]
        number_at, mccmnc_at = self.shapes[count]
        keys, ok = self._numbers(columns[number_at])
        if not self.delta:
            mccmnc_ok, networks = self._networks(columns[mccmnc_at])
            ok &= mccmnc_ok
        else:
            action = self._actions(columns[0])
            networks = np.full(len(keys), REMOVE, dtype=np.int32)
            if mccmnc_at < 0:  # action,number: only a removal
                ok &= action == _REMOVE_ROW
            else:  # a removal's further fields are not read
                mccmnc_ok, mccmnc_networks = self._networks(columns[mccmnc_at])
                adds = action == _ADD
                ok &= (action == _REMOVE_ROW) | (adds & mccmnc_ok)
                networks = np.where(adds, mccmnc_networks, REMOVE).astype(np.int32)
        if ok.all():
            self.parts.append((lines, keys, networks))
        else:
            self.parts.append((lines[ok], keys[ok], networks[ok]))
        refused = np.flatnonzero(~ok)
        if len(refused):  # with quoting off a row is its fields joined by commas: the line, for the reader
            taken = pa.array(refused)
            fields = [self.arrow.take(column, taken).to_pylist() for column in table.columns]
            for line, parts in zip(lines[refused].tolist(), zip(*fields, strict=True), strict=True):
                self.odd.append((line, ",".join(parts), -1))

    def _numbers(self, column: pa.Array) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
        """Per row: the number as an integer, and whether the per-line reader surely accepts it.

        First the quick way: pyarrow casts the whole column (one ``+`` stripped), and a row is
        good if it has 7-15 digits' bytes, does not start with 0 (the cast also reads ``0x`` hex),
        and its value has as many digits as that (so no sign, no byte the cast skipped). A column
        the cast refuses (a letter, a space, ...) is checked byte by byte instead.
        """
        arrow, pa = self.arrow, self.arrow.pa
        lengths, first = _lengths_and_first_bytes(column)
        digits, digit_lengths, single_plus = column, lengths, None
        if ((lengths > 0) & (first == _PLUS)).any():
            digits = arrow.ltrim(column, "+")
            digit_lengths, first = _lengths_and_first_bytes(digits)
            single_plus = lengths - digit_lengths <= 1  # ltrim takes every +; the per-line reader one
        try:
            values = np.asarray(arrow.cast_int64(digits).to_numpy(zero_copy_only=False), dtype=np.int64)
        except pa.ArrowInvalid:
            ok, _ = _e164(column)
            keys = np.zeros(len(column), dtype=np.int64)
            keys[ok] = np.asarray(arrow.cast_int64(arrow.filter(digits, pa.array(ok))).to_numpy(zero_copy_only=False))
            return keys, ok
        sized = (digit_lengths >= 7) & (digit_lengths <= 15) & (first != _ZERO)
        width = np.where(sized, digit_lengths, 1)
        ok = sized & (values >= _POW10[width - 1]) & (values < _POW10[width])
        if single_plus is not None:
            ok &= single_plus
        return values, ok

    def _networks(self, column: pa.Array) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.int32]]:
        """Per row: whether its MCC/MNC is one, and its index into ``self.names`` (the few distinct ones checked)."""
        fixed = _fixed_width_digits(column)
        if fixed is not None:  # every field 5 (or every one 6) digits: read as numbers, no dictionary to build
            width, codes = fixed
            seen = np.zeros(10**width, dtype=bool)
            seen[codes] = True
            name_of = np.zeros(10**width, dtype=np.int32)
            for code in np.flatnonzero(seen).tolist():
                mccmnc = formats.mccmnc_of(f"{code:0{width}d}")  # the field itself: digits at their width
                assert mccmnc is not None, "5 or 6 digits are an MCC/MNC"
                name_of[code] = self._name(mccmnc)
            return np.ones(len(codes), dtype=bool), name_of[codes]
        encoded = self.arrow.dictionary_encode(column)
        valid, index = [], []
        for text in encoded.dictionary.to_pylist():
            mccmnc = formats.mccmnc_of(text)
            valid.append(mccmnc is not None)
            index.append(self._name(mccmnc) if mccmnc is not None else REMOVE)
        rows = np.asarray(encoded.indices.to_numpy(zero_copy_only=False))
        return np.array(valid, dtype=bool)[rows], np.array(index, dtype=np.int32)[rows]

    def _actions(self, column: pa.Array) -> npt.NDArray[np.int8]:
        """Per row: _ADD, _REMOVE_ROW, or 0 for an action the per-line reader refuses."""
        encoded = self.arrow.dictionary_encode(column)
        kinds = {"add": _ADD, "remove": _REMOVE_ROW}
        codes = np.array(
            [kinds.get(formats.action_of(text) or "", 0) for text in encoded.dictionary.to_pylist()], dtype=np.int8
        )
        rows: npt.NDArray[np.int32] = np.asarray(encoded.indices.to_numpy(zero_copy_only=False))
        return codes[rows]

    def _name(self, mccmnc: str) -> int:
        found = self.name_index.get(mccmnc)
        if found is None:
            found = self.name_index[mccmnc] = len(self.names)
            self.names.append(mccmnc)
        return found

    def _merged(self) -> Iterator[PortedBlock | LineError]:
        """The accepted rows and the per-line reader's records and errors, in line order, up to any handover."""
        records: list[PortedRecord] = []
        errors: list[LineError] = []
        stop: int | None = None  # the line where this block's reading ends early
        for line, text, offset in sorted(self.odd):
            try:
                got = formats.ported_line(text, line, delta=self.delta)
            except RecordContinues:
                assert offset >= 0, "only a line with a quote continues, and those keep their offset"
                self.handover, stop = (line, offset), line
                break
            except FormatError as exc:  # as reading line by line: raised once the lines before it are read
                self.failure, stop = exc, line
                break
            if isinstance(got, LineError):
                errors.append(got)
            elif got is not None:
                records.append(got)
        names, lines, keys, networks = self._in_line_order(records)
        if stop is not None:
            before = lines < stop
            lines, keys, networks = lines[before], keys[before], networks[before]
        at = 0
        for error, cut in zip(errors, np.searchsorted(lines, [e.line for e in errors]).tolist(), strict=True):
            if cut > at:
                yield PortedBlock(keys[at:cut], networks[at:cut], names)
            yield error
            at = cut
        if at < len(keys):
            yield PortedBlock(keys[at:], networks[at:], names)

    def _in_line_order(
        self, records: list[PortedRecord]
    ) -> tuple[tuple[str, ...], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int32]]:
        """The block's MCC/MNCs, and the lines, numbers and networks of every accepted row and record, by line."""
        lines_of = np.array([r.line for r in records], dtype=np.int64)
        keys_of = np.array([int(r.number) for r in records], dtype=np.int64)
        networks_of = np.array(
            [REMOVE if r.action == "remove" else self._name(r.mccmnc or "") for r in records], dtype=np.int32
        )
        names = tuple(self.names)
        if len(self.parts) == 1 and not records:
            return names, *self.parts[0]
        if len(self.parts) == 1:  # one piece: its rows are in line order; the records go in between
            lines, keys, networks = self.parts[0]
            at = np.searchsorted(lines, lines_of)
            return (
                names,
                np.insert(lines, at, lines_of),
                np.insert(keys, at, keys_of),
                np.insert(networks, at, networks_of),
            )
        lines = np.concatenate([lines_of, *(part[0] for part in self.parts)])
        order = np.argsort(lines, kind="stable")
        keys = np.concatenate([keys_of, *(part[1] for part in self.parts)])[order]
        networks = np.concatenate([networks_of, *(part[2] for part in self.parts)])[order]
        return names, lines[order], keys, networks


def _fixed_width_digits(column: pa.Array) -> tuple[int, npt.NDArray[np.int32]] | None:
    """Per row of a string column whose fields are all 5, or all 6, ASCII digits: its value; else None.

    Why: an MCC/MNC column is almost always one width of digits, and its values then
    name its fields exactly (``f"{value:0{width}d}"`` is the field), so the few distinct
    ones come from a table of 10**width slots instead of pyarrow's dictionary encoding.
    """
    rows = len(column)
    _, offsets_buffer, data_buffer = column.buffers()
    if rows == 0 or data_buffer is None:
        return None
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32, count=rows + 1, offset=column.offset * 4)
    width = int(offsets[1] - offsets[0])
    if width not in (5, 6) or int(offsets[-1] - offsets[0]) != width * rows or (np.diff(offsets) != width).any():
        return None
    digits = np.frombuffer(data_buffer, dtype=np.uint8, count=width * rows, offset=int(offsets[0])).reshape(rows, width)
    digits = digits - np.uint8(_ZERO)  # a byte below "0" wraps to above 9
    if (digits > 9).any():
        return None
    codes = digits[:, 0].astype(np.int32)
    for place in range(1, width):
        codes *= 10
        codes += digits[:, place]
    return width, codes


def _newlines(data: bytes) -> int:
    """``data.count(b"\\n")``, a quarter of the time: ``bytes.count`` of one byte is ~6 ms for a block of 8 MiB."""
    return int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == 0x0A))


def _lengths_and_first_bytes(column: pa.Array) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.uint8]]:
    """Per row of a string column: its length in bytes and its first byte (any byte if empty), from its buffers."""
    rows = len(column)
    _, offsets_buffer, data_buffer = column.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32, count=rows + 1, offset=column.offset * 4)
    if data_buffer is None or offsets[-1] == offsets[0]:
        return np.diff(offsets), np.zeros(rows, dtype=np.uint8)
    data = np.frombuffer(data_buffer, dtype=np.uint8)
    return np.diff(offsets), data[np.minimum(offsets[:-1], offsets[-1] - 1)]


def _e164(column: pa.Array) -> tuple[npt.NDArray[np.bool_], bool]:
    """Per row: ``+``? then 7-15 ASCII digits, the first not 0 (what the per-line reader surely accepts).

    Read straight from the string column's buffers: its offsets and bytes. Also: whether any row has the ``+``.
    """
    rows = len(column)
    _, offsets_buffer, data_buffer = column.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32, count=rows + 1, offset=column.offset * 4).astype(np.int64)
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.zeros(0, dtype=np.uint8)
    if len(data) == 0:
        return np.zeros(rows, dtype=bool), False
    starts, stops = offsets[:-1], offsets[1:]
    lengths = stops - starts
    plus = (lengths > 0) & (data[np.minimum(starts, len(data) - 1)] == _PLUS)
    digits = lengths - plus
    ok = (digits >= 7) & (digits <= 15) & (data[np.minimum(starts + plus, len(data) - 1)] != _ZERO)
    span = data[offsets[0] : offsets[-1]]
    not_digit = np.flatnonzero((span - _ZERO).astype(np.uint8) > 9) + offsets[0]
    if len(not_digit):
        row = np.searchsorted(stops, not_digit, side="right")
        leading_plus = plus[row] & (not_digit == starts[row])
        ok[row[~leading_plus]] = False
    return ok, bool(plus[ok].any())
