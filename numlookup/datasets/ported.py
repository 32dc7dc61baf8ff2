"""Ported numbers from rows to a ``PortedMap``: blocks of rows as arrays, then one sort.

Why a module: a ported-number file runs to a hundred million rows, so nothing
here holds a Python object per row. Readers hand over ``PortedBlock``s (numbers
and network indices as numpy arrays) with the bad lines between them, in line
order; ``build`` interns the networks, keeps the arrays, and compiles them:

- **A number's last line decides.** Numbers and network indices are packed into
  one int64 each (the number, at most 15 digits, above 13 bits of network), so
  one in-place-speed ``np.sort`` orders them, instead of a stable argsort and
  gathers (five times slower, twice the memory). The sort orders a repeated
  number's rows by network, not by line, so the few numbers that repeat get
  their last line's network from the rows as read. More than 8,191 networks
  (a 13-bit index, one value kept to mark a removal) take the general way.
- **Memory.** The rows as read (10 bytes a row, in large segments), then the
  packed rows and their sorted copy (16 bytes a row; a segment is freed as it
  is packed): 100 million rows stay well under 2.5 GB.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from numlookup.datasets.formats import LineError, PortedRecord, RangeRecord
from numlookup.numbering.interning import Interner
from numlookup.numbering.operator_data import DataNetwork, PortedMap

REMOVE = -1  # PortedBlock.networks: the row removes its number (a delta's ``remove``)
MAX_NETWORKS = 65_536  # network indices are uint16
_BITS = 13  # the network index inside a packed row; 10**15 << 13 still fits an int64
_MASK = (1 << _BITS) - 1  # also the packed value of a removal
_WINDOW = 1 << 20  # rows per step where a whole-array temporary would cost 8 bytes a row more
_Int = TypeVar("_Int", bound=np.integer[Any])


@dataclass(frozen=True, slots=True, eq=False)
class PortedBlock:
    """Consecutive good rows of a ported-number file, in line order."""

    keys: npt.NDArray[np.int64]  # the numbers, E.164 digits as integers
    networks: npt.NDArray[np.int32]  # per row: an index into ``names``, or REMOVE
    names: tuple[str, ...]  # MCC/MNCs


# A block kept for the build: numbers, network indices, and which rows remove (None: none do).
Part = tuple[npt.NDArray[np.int64], npt.NDArray[np.uint16], npt.NDArray[np.bool_] | None]
Latest = tuple[npt.NDArray[np.int64], npt.NDArray[np.uint16], npt.NDArray[np.bool_] | None]


class TooManyNetworks(ValueError):
    """More distinct networks than a uint16 index can name."""


def blocks(
    records: Iterable[RangeRecord | PortedRecord | PortedBlock | LineError], size: int = 1 << 16
) -> Iterator[PortedBlock | LineError]:
    """The per-line readers' records gathered into blocks; blocks and bad lines pass through, in order."""
    keys: list[int] = []
    networks: list[int] = []
    names: dict[str, int] = {}

    def block() -> PortedBlock:
        made = PortedBlock(np.array(keys, dtype=np.int64), np.array(networks, dtype=np.int32), tuple(names))
        keys.clear()
        networks.clear()
        names.clear()
        return made

    for record in records:
        if isinstance(record, PortedRecord):
            keys.append(int(record.number))
            if record.action == "remove":
                networks.append(REMOVE)
            else:
                networks.append(names.setdefault(record.mccmnc or "", len(names)))
            if len(keys) >= size:
                yield block()
            continue
        if not isinstance(record, PortedBlock | LineError):
            raise TypeError(f"a {type(record).__name__} in a ported-number import")
        if keys:
            yield block()
        yield record
    if keys:
        yield block()


class _Networks(Interner[DataNetwork]):
    def add(self, mccmnc: str) -> int:
        return self(DataNetwork(mccmnc))


def _first_seen(local: npt.NDArray[np.int32], count: int) -> list[int]:
    """The indices into a block's names its rows use, in the order the rows first use them."""
    if count <= 64:  # a pass per name beats a sort of the block
        firsts: list[tuple[int, int]] = []
        for name in range(count):
            hits = local == name
            at = int(hits.argmax())
            if hits[at]:
                firsts.append((at, name))
        return [name for _, name in sorted(firsts)]
    used = local[local != REMOVE]
    names, first = _first_of_each(used)
    return [int(n) for n in names[np.argsort(first)]]


def _values(block: PortedBlock, networks: _Networks, removes: npt.NDArray[np.bool_] | None) -> npt.NDArray[np.uint16]:
    """The block's rows as indices into the dataset's networks (0 for a removal); interned in line order."""
    lookup = np.zeros(max(len(block.names), 1), dtype=np.uint16)
    for name in _first_seen(block.networks, len(block.names)):
        index = networks.add(block.names[name])
        if index >= MAX_NETWORKS:
            raise TooManyNetworks(f"more than {MAX_NETWORKS - 1:,} distinct networks in one ported-number dataset")
        lookup[name] = index
    if removes is None:
        return lookup[block.networks]
    return np.where(removes, 0, lookup[np.maximum(block.networks, 0)]).astype(np.uint16)


class _Rows:
    """The rows kept so far: numbers, network indices and removals, in segments of SEGMENT rows.

    Why segments: a segment is large enough that malloc maps it on its own, so
    one freed while the rows are packed goes back to the system at once, and
    the blocks as read (pyarrow's buffers) are not kept at all.
    """

    SEGMENT = 1 << 24  # 16M rows: 128 MB of numbers, 32 MB of network indices

    def __init__(self) -> None:
        self.segments: list[Part] = []
        self.used = 0  # rows in the last segment
        self.count = 0

    def add(
        self, keys: npt.NDArray[np.int64], values: npt.NDArray[np.uint16], removes: npt.NDArray[np.bool_] | None
    ) -> None:
        at = 0
        while at < len(keys):
            if not self.segments or self.used == self.SEGMENT:
                self.segments.append(
                    (np.empty(self.SEGMENT, dtype=np.int64), np.empty(self.SEGMENT, dtype=np.uint16), None)
                )
                self.used = 0
            seg_keys, seg_values, seg_removes = self.segments[-1]
            take = min(len(keys) - at, self.SEGMENT - self.used)
            seg_keys[self.used : self.used + take] = keys[at : at + take]
            seg_values[self.used : self.used + take] = values[at : at + take]
            if removes is not None and removes[at : at + take].any():
                if seg_removes is None:
                    seg_removes = np.zeros(self.SEGMENT, dtype=bool)  # untouched pages cost nothing
                    self.segments[-1] = (seg_keys, seg_values, seg_removes)
                seg_removes[self.used : self.used + take] = removes[at : at + take]
            self.used += take
            self.count += take
            at += take

    def drain(self) -> Iterator[Part]:
        """The rows in line order, a segment at a time, each dropped once the caller has moved on."""
        while self.segments:
            keys, values, removes = self.segments.pop(0)
            size = self.used if not self.segments else self.SEGMENT
            yield keys[:size], values[:size], removes[:size] if removes is not None else None
            del keys, values, removes


def build(
    items: Iterable[PortedBlock | LineError],
    on_error: Callable[[LineError], None],
    previous: PortedMap | None,
    delta: bool,
) -> tuple[PortedMap, int]:
    """The map the rows make (onto ``previous``'s numbers, for a delta), and how many rows were read.

    ``on_error`` sees each bad line in line order, between the blocks around it, and may raise.
    """
    networks = _Networks(previous.networks if previous is not None and delta else ())
    rows = _Rows()
    for item in items:
        if isinstance(item, LineError):
            on_error(item)
        elif len(item.keys):
            removes = item.networks == REMOVE
            kept = removes if removes.any() else None
            rows.add(item.keys, _values(item, networks, kept), kept)
    count = rows.count
    if len(networks.items) <= _MASK:
        keys, values, removed = _latest_packed(rows)
    else:
        keys, values, removed = _latest_sorted(rows)
    if removed is not None:
        keys, values, gone = keys[~removed], values[~removed], keys[removed]
    else:
        gone = np.zeros(0, dtype=np.int64)
    if previous is None or not delta:
        return PortedMap(keys, values, networks.items), count
    merged_keys, merged_values = _merge(np.asarray(previous.keys), np.asarray(previous.values), keys, values, gone)
    return PortedMap(merged_keys, merged_values, networks.items), count


def _latest_packed(rows: _Rows) -> Latest:
    """Each number once, sorted, with its last row's network and whether that row removes it."""
    packed = np.empty(rows.count, dtype=np.int64)
    any_removes = False
    at = 0
    for keys, values, removes in rows.drain():  # a segment is freed once packed: never both held whole
        part = packed[at : at + len(keys)]
        np.left_shift(keys, _BITS, out=part)
        part |= values
        if removes is not None and removes.any():
            part[removes] |= _MASK
            any_removes = True
        at += len(keys)
        del keys, values, removes, part  # the segment goes now, not when the loop's names are next bound
    ordered = np.sort(packed)
    repeated = _repeated(ordered)
    last = _last_values(packed, repeated) if len(repeated) else None
    del packed
    ordered = _dedup(ordered)
    values = np.empty(len(ordered), dtype=np.uint16)
    for start in range(0, len(ordered), _WINDOW):
        values[start : start + _WINDOW] = ordered[start : start + _WINDOW] & _MASK
    np.right_shift(ordered, _BITS, out=ordered)
    if last is not None:
        values[np.searchsorted(ordered, repeated)] = last
    removed = None
    if any_removes:
        removed = values == _MASK
        values[removed] = 0
    return ordered, values, removed


def _repeated(ordered: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """The numbers whose rows disagree: more than one row, not all with the same network (or removal).

    A number repeated on identical rows needs no search for its last line: its row in the
    sorted packed rows is that line's (a file that repeats lines costs no scan of all rows).
    """
    found: list[npt.NDArray[np.int64]] = []
    for start in range(0, max(len(ordered) - 1, 0), _WINDOW):
        rows = ordered[start : start + _WINDOW + 1]
        numbers = rows >> _BITS
        found.append(numbers[1:][(numbers[1:] == numbers[:-1]) & (rows[1:] != rows[:-1])])
    return _first_of_each(np.concatenate(found))[0] if found else np.zeros(0, dtype=np.int64)


def _last_values(packed: npt.NDArray[np.int64], repeated: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Per repeated number whose rows disagree (sorted), the packed network of its last row in line order.

    A table of the repeated numbers' low bits picks the few rows that may be one
    of them; only those are looked up (a binary search of every row costs seconds).
    The table has about 64 slots per repeated number (at most 64 MB), so only ~1.5%
    of the other rows get through: at 100M rows and half a million repeated numbers
    a table of 8 slots each let 12M rows through, whose lookups took 6 s (now ~2.5 s).
    """
    bits = min(max(int(len(repeated)).bit_length() + 6, 16), 26)
    low = (1 << bits) - 1
    maybe = np.zeros(1 << bits, dtype=bool)
    maybe[repeated & low] = True
    last = np.zeros(len(repeated), dtype=np.int64)
    slots_of = np.empty(min(len(packed), _WINDOW), dtype=np.int64)  # one buffer for every window's table slots
    for start in range(0, len(packed), _WINDOW):  # in line order: a later window overwrites an earlier one
        rows = packed[start : start + _WINDOW]
        slot_of = slots_of[: len(rows)]
        np.right_shift(rows, _BITS, out=slot_of)
        np.bitwise_and(slot_of, low, out=slot_of)
        rows = rows[maybe[slot_of]]
        numbers = rows >> _BITS
        slot = np.minimum(np.searchsorted(repeated, numbers), len(repeated) - 1)
        hit = repeated[slot] == numbers
        slots, values = slot[hit][::-1], rows[hit][::-1] & _MASK
        seen, first_from_end = _first_of_each(slots)
        last[seen] = values[first_from_end]
    return last


def _first_of_each(values: npt.NDArray[_Int]) -> tuple[npt.NDArray[_Int], npt.NDArray[np.intp]]:
    """``np.unique(values, return_index=True)``: the distinct values, sorted, and where each first occurs.

    Not ``np.unique`` itself: numpy 2's imports ``numpy.ma`` on first use (~15 ms of every import).
    """
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    first = np.ones(len(ordered), dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    return ordered[first], order[first]


def _dedup(ordered: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """One row per number, moved down in place (a number's rows are adjacent in the sorted packed rows)."""
    kept = 0
    for start in range(0, len(ordered), _WINDOW):
        stop = min(start + _WINDOW, len(ordered))
        numbers = ordered[start : stop + 1] >> _BITS
        last = np.ones(stop - start, dtype=bool)
        last[: len(numbers) - 1] = numbers[1:] != numbers[:-1]
        rows = ordered[start:stop][last]
        ordered[kept : kept + len(rows)] = rows
        kept += len(rows)
    return ordered[:kept]


def _latest_sorted(rows: _Rows) -> Latest:
    """``_latest_packed`` for datasets of more networks than a packed row holds: a stable argsort."""
    parts = list(rows.drain())
    keys = np.concatenate([k for k, _, _ in parts]) if parts else np.zeros(0, dtype=np.int64)
    values = np.concatenate([v for _, v, _ in parts]) if parts else np.zeros(0, dtype=np.uint16)
    any_removes = any(r is not None for _, _, r in parts)
    removes = (
        np.concatenate([r if r is not None else np.zeros(len(k), dtype=bool) for k, _, r in parts])
        if any_removes
        else None
    )
    del parts
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    last = np.ones(len(ordered), dtype=bool)
    last[:-1] = ordered[1:] != ordered[:-1]
    final = order[last]
    return keys[final], values[final], removes[final] if removes is not None else None


def _merge(
    old_keys: npt.NDArray[np.int64],
    old_values: npt.NDArray[np.uint16],
    keys: npt.NDArray[np.int64],
    values: npt.NDArray[np.uint16],
    gone: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.uint16]]:
    """A delta onto the previous map: its numbers (added or removed) replace the old rows; all stay sorted."""
    touched = np.union1d(keys, gone)
    keep = np.ones(len(old_keys), dtype=bool)
    if len(old_keys) and len(touched):
        slot = np.minimum(np.searchsorted(old_keys, touched), len(old_keys) - 1)
        keep[slot[old_keys[slot] == touched]] = False
    kept_keys, kept_values = old_keys[keep], old_values[keep]
    at = np.searchsorted(kept_keys, keys)
    return np.insert(kept_keys, at, keys), np.insert(kept_values, at, values)
