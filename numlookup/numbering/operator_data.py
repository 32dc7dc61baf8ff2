"""The operator's own data: imported number ranges and ported numbers, compiled to memory-mapped arrays.

Both are sorted numpy arrays answered with ``searchsorted``, built once at import
time and stored as ``.npy`` files that load memory-mapped: a map of 100 million
ported numbers costs 10 bytes a number (an int64 key and a uint16 network index)
and opens in milliseconds. Python dicts would need ~100 bytes a number.

``OperatorData`` holds both as one immutable value, swapped whole into a running
resolver: a lookup takes one snapshot for its whole batch, so no lookup ever sees
half a dataset, and a new version needs no lock: replacing the reference is atomic.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import numpy as np
import numpy.typing as npt

from numlookup.numbering.intervals import NO_NETWORK, POW10, paint, sorted_search


@dataclass(frozen=True, slots=True)
class DataNetwork:
    """A network an import names: its MCC/MNC and, if the file gave one, its name."""

    mccmnc: str
    name: str | None = None


def _save_networks(path: Path, networks: Sequence[DataNetwork]) -> None:
    path.write_text(json.dumps([[n.mccmnc, n.name] for n in networks]))


def _load_networks(path: Path) -> tuple[DataNetwork, ...]:
    return tuple(DataNetwork(m, n) for m, n in json.loads(path.read_text()))


class RangeMap:
    """Disjoint segments: ``starts[i]`` begins segment i, which maps to ``values[i]`` (or NO_NETWORK).

    Also keeps the intervals it was compiled from, so a delta import can change them.
    """

    def __init__(
        self,
        intervals: npt.NDArray[np.int64],  # shape (n, 3): low, high, sequence (a later one wins a tie)
        interval_values: npt.NDArray[np.int32],
        starts: npt.NDArray[np.int64],
        values: npt.NDArray[np.int32],
        networks: Sequence[DataNetwork],
    ) -> None:
        self.intervals = intervals
        self.interval_values = interval_values
        self.starts = starts
        self.values = values
        self.networks = tuple(networks)

    @classmethod
    def compile(
        cls, intervals: npt.NDArray[np.int64], interval_values: npt.NDArray[np.int32], networks: Sequence[DataNetwork]
    ) -> Self:
        """Flatten nested intervals so the narrowest wins: a longer prefix, or a range inside a prefix."""
        if len(intervals) == 0:
            empty = np.zeros(0, dtype=np.int64)
            return cls(intervals.reshape(0, 3), interval_values, empty, np.zeros(0, dtype=np.int32), networks)
        low, high, sequence = intervals[:, 0], intervals[:, 1], intervals[:, 2]
        # Paint the widest first, so narrower intervals overwrite them; equal widths in line order.
        order = np.lexsort((sequence, -(high - low)))
        starts, values = paint(low, high, interval_values.astype(np.int32), order, NO_NETWORK)
        return cls(intervals, interval_values, starts, values, networks)

    def lookup(self, padded: npt.NDArray[np.int64]) -> npt.NDArray[np.int32]:
        """Network index per padded key, NO_NETWORK where no range covers it."""
        if len(self.starts) == 0:
            return np.full(len(padded), NO_NETWORK, dtype=np.int32)
        idx = sorted_search(self.starts, padded, "right") - 1
        found = self.values[np.maximum(idx, 0)]
        return np.where(idx >= 0, found, NO_NETWORK).astype(np.int32)

    def lookup_one(self, padded: int) -> int:
        """:meth:`lookup` of one padded key, for a batch resolved number by number (``Resolver.resolve_small``)."""
        if len(self.starts) == 0:
            return NO_NETWORK
        idx = int(self.starts.searchsorted(padded, "right")) - 1
        return int(self.values[idx]) if idx >= 0 else NO_NETWORK

    def __len__(self) -> int:
        return len(self.intervals)

    def save(self, folder: Path) -> None:
        np.save(folder / "intervals.npy", self.intervals)
        np.save(folder / "interval_values.npy", self.interval_values)
        np.save(folder / "starts.npy", self.starts)
        np.save(folder / "values.npy", self.values)
        _save_networks(folder / "networks.json", self.networks)

    @classmethod
    def load(cls, folder: Path) -> Self:
        return cls(
            np.load(folder / "intervals.npy", mmap_mode="r"),
            np.load(folder / "interval_values.npy", mmap_mode="r"),
            np.load(folder / "starts.npy", mmap_mode="r"),
            np.load(folder / "values.npy", mmap_mode="r"),
            _load_networks(folder / "networks.json"),
        )


class PortedMap:
    """Sorted unique number keys and, per key, the index of the network it was ported to.

    A ported-number file lists the numbers that moved, so a number it does not
    list is known not to be ported only where the file speaks at all: in the
    countries (calling codes) it holds numbers of (``covers``).
    """

    def __init__(
        self, keys: npt.NDArray[np.int64], values: npt.NDArray[np.uint16], networks: Sequence[DataNetwork]
    ) -> None:
        self.keys = keys
        self.values = values
        self.networks = tuple(networks)
        self._covers: dict[str, bool] = {}  # calling code → holds a number of it; a map never changes

    def covers(self, calling_code: str) -> bool:
        """Whether the map holds any number of country calling code ``calling_code`` (digits, e.g. ``372``)."""
        known = self._covers.get(calling_code)
        if known is None:
            known = self._covers[calling_code] = self._holds_prefix(int(calling_code), len(calling_code))
        return known

    def _holds_prefix(self, prefix: int, length: int) -> bool:
        """Any key whose digits start with ``prefix``: one search per possible number length, no scan."""
        if len(self.keys) == 0:
            return False
        scale = POW10[1 : len(POW10) - length]  # the digits after the prefix: 1 … up to int64's 18 digits in all
        low, high = prefix * scale, (prefix + 1) * scale
        found = np.searchsorted(self.keys, low, side="left")
        inside = found < len(self.keys)
        return bool(np.any(self.keys[np.minimum(found, len(self.keys) - 1)][inside] < high[inside]))

    @classmethod
    def build(
        cls, keys: npt.NDArray[np.int64], values: npt.NDArray[np.uint16], networks: Sequence[DataNetwork]
    ) -> Self:
        """Sort; where a number repeats, its last row wins (a later line corrects an earlier one)."""
        order = np.argsort(keys, kind="stable")
        keys, values = keys[order], values[order]
        if len(keys):
            last = np.ones(len(keys), dtype=bool)
            last[:-1] = keys[1:] != keys[:-1]
            keys, values = keys[last], values[last]
        return cls(keys, values, networks)

    def lookup(self, keys: npt.NDArray[np.int64]) -> npt.NDArray[np.int32]:
        if len(self.keys) == 0:
            return np.full(len(keys), NO_NETWORK, dtype=np.int32)
        idx = sorted_search(self.keys, keys, "left")
        clipped = np.minimum(idx, len(self.keys) - 1)
        hit = self.keys[clipped] == keys
        return np.where(hit, self.values[clipped].astype(np.int32), NO_NETWORK).astype(np.int32)

    def lookup_one(self, key: int) -> int:
        """:meth:`lookup` of one number, for a small batch resolved number by number (``Resolver.resolve_small``)."""
        keys = self.keys
        if len(keys) == 0:
            return NO_NETWORK
        idx = min(int(keys.searchsorted(key, "left")), len(keys) - 1)
        return int(self.values[idx]) if int(keys[idx]) == key else NO_NETWORK

    def __len__(self) -> int:
        return len(self.keys)

    def save(self, folder: Path) -> None:
        np.save(folder / "keys.npy", self.keys)
        np.save(folder / "values.npy", self.values)
        _save_networks(folder / "networks.json", self.networks)

    @classmethod
    def load(cls, folder: Path) -> Self:
        return cls(
            np.load(folder / "keys.npy", mmap_mode="r"),
            np.load(folder / "values.npy", mmap_mode="r"),
            _load_networks(folder / "networks.json"),
        )


@dataclass(frozen=True, slots=True)
class OperatorData:
    ranges: RangeMap | None = None
    ported: PortedMap | None = None
    # kind -> active version, so a follower can tell whether it is up to date
    versions: dict[str, int] = field(default_factory=dict)
