"""The compiled numbering plan: libphonenumber's metadata as sorted interval arrays, answered with numpy.

Why: libphonenumber answers one number at a time by running a dozen regexes and
a prefix walk for the carrier, tens of microseconds a number. The plan answers a
batch with a handful of ``numpy.searchsorted`` calls over arrays that
:mod:`compiler` builds once (keys as :mod:`layout` says).

Correctness is libphonenumber's: the arrays mirror its rules, and the test suite
and ``bench/numbering.py`` compare the plan with :func:`reference.reference` on
every number of a seeded corpus. What the arrays cannot decide exactly (input
that is not ``+`` and digits, calling codes whose patterns or national-prefix
rules are beyond the expander, carrier prefixes longer than the number) goes
through phonenumbers itself — the *slow path* — and is counted in
:attr:`NumberingPlan.stats`.

The compiled arrays are cached keyed by the phonenumbers version and
memory-mapped from there (:mod:`plan_cache`), so a process that starts on a warm
cache loads in about a millisecond. The cache also holds each region's country
name and ISO alpha-3 (:mod:`countries`), so a warm start never imports
phonenumbers' geodata or pycountry, half a second of a one-number lookup.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import compress
from pathlib import Path
from typing import TYPE_CHECKING, Self

import numpy as np
import numpy.typing as npt
import phonenumbers

from numlookup.numbering import countries, plan_cache
from numlookup.numbering.intervals import POW10
from numlookup.numbering.layout import (
    ARRAYS,
    CARRIER_TYPES,
    KEY_BASE,
    MAX_DIGITS,
    MAX_KEYED,
    MAX_NSN,
    NO_REGION,
    REASON_CODE,
    REASONS,
    SLOW,
    UNKNOWN,
    Array,
    carrier_typed,
)
from numlookup.numbering.models import InvalidReason

if TYPE_CHECKING:
    from numlookup.numbering.reference import Reference


@dataclass(slots=True)
class BatchResult:
    """Columnar results, one row per input, in input order.

    ``reason`` indexes :data:`REASONS` (0 = valid), ``number_type`` holds
    ``PhoneNumberType`` values (UNKNOWN for invalid rows), ``region`` and
    ``carrier`` index the ``regions`` and ``carriers`` tuples (``-1``: none;
    ``carriers[0]`` is ``""``). ``digits`` is the E.164 number as an integer
    (0 when the input does not parse); :meth:`e164` spells it.
    """

    valid: npt.NDArray[np.bool_]
    reason: npt.NDArray[np.int8]
    number_type: npt.NDArray[np.int8]
    region: npt.NDArray[np.int16]
    carrier: npt.NDArray[np.int32]
    digits: npt.NDArray[np.int64]
    regions: tuple[str, ...]
    carriers: tuple[str, ...]
    slow: int
    long_e164: dict[int, str] = field(default_factory=dict)  # parsed numbers too long for int64

    def __len__(self) -> int:
        return len(self.valid)

    def e164(self, i: int) -> str | None:
        if i in self.long_e164:
            return self.long_e164[i]
        value = int(self.digits[i])
        return f"+{value}" if value else None

    def row(self, i: int) -> Reference:
        """One row as a :class:`Reference`, for comparisons and for callers that want objects."""
        from numlookup.numbering.reference import Reference

        region = int(self.region[i])
        return Reference(
            bool(self.valid[i]),
            REASONS[int(self.reason[i])],
            int(self.number_type[i]),
            self.regions[region] if region >= 0 else None,
            self.carriers[int(self.carrier[i])] if self.carrier[i] >= 0 else "",
            self.e164(i),
        )


@dataclass(slots=True)
class PlanStats:
    """How many numbers the plan resolved and how many of them needed phonenumbers."""

    numbers: int = 0
    slow: int = 0

    @property
    def slow_share(self) -> float:
        return self.slow / self.numbers if self.numbers else 0.0


def _lookup(
    starts: npt.NDArray[np.int64], values: npt.NDArray[np.int64], keys: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """The value of the segment holding each key (tables start at key 0, so every key has one)."""
    return values[np.searchsorted(starts, keys, side="right") - 1]


class NumberingPlan:
    """Compiled arrays plus the slow path; the arrays are immutable after load.

    ``stats`` is the only mutable state (two counters); share one plan per process.
    """

    # The compiled arrays (layout.ARRAYS), set from one dict so that load and compile agree.
    cc_codes: Array
    cc_len: Array
    cc3: Array
    cc_strip: Array
    reason_by_len: Array
    keep_by_len: Array
    main_starts: Array
    main_region: Array
    main_type: Array
    gd_starts: Array
    gd_values: Array
    strip_starts: Array
    strip_values: Array
    strip_drop: Array
    strip_from: Array
    strip_to: Array
    strip_put: Array
    strip_put_len: Array
    carrier_starts: Array
    carrier_entry: Array
    entry_name: Array
    entry_len: Array

    def __init__(
        self,
        arrays: dict[str, Array],
        regions: Sequence[str],
        carriers: Sequence[str],
        load_seconds: float,
        slow_codes: Sequence[int],
    ) -> None:
        for name in ARRAYS:
            setattr(self, name, arrays[name])
        self.regions = tuple(regions)
        self.carriers = tuple(carriers)
        self.region_index = {r: i for i, r in enumerate(self.regions)}
        self.carrier_index = {c: i for i, c in enumerate(self.carriers)}
        self.load_seconds = load_seconds
        self.slow_codes = tuple(slow_codes)  # calling codes that always take the slow path
        self.stats = PlanStats()
        phonenumbers.enable_pattern_cache()

    # ---- loading

    @classmethod
    def cache_name(cls) -> str:
        return plan_cache.folder_name(phonenumbers.__version__)

    @classmethod
    def load(cls, cache_dir: Path | None = None) -> Self:
        """Load the compiled tables from ``cache_dir`` or compile them (and cache them there).

        The cache's name and manifest carry the phonenumbers version, so upgrading
        the library recompiles instead of answering from stale metadata; a damaged
        cache is compiled again and replaced, never used (see :mod:`plan_cache`).
        """
        start = time.perf_counter()
        if cache_dir is not None:
            cached = plan_cache.read(cache_dir / cls.cache_name(), phonenumbers.__version__)
            if cached is not None:
                meta = cached.meta
                countries.remember({region: (name, alpha3) for region, name, alpha3 in meta["countries"]})
                return cls(
                    cached.arrays, meta["regions"], meta["carriers"], time.perf_counter() - start, meta["slow_codes"]
                )
        from numlookup.numbering.compiler import compile_plan  # only without a cache: it needs all of phonenumbers

        arrays, regions, carriers, slow_codes = compile_plan()
        table = countries.country_table()
        countries.remember(table)
        if cache_dir is not None:
            meta = {
                "regions": list(regions),
                "carriers": list(carriers),
                "slow_codes": [int(code) for code in slow_codes],
                "countries": [[region, name, alpha3] for region, (name, alpha3) in sorted(table.items())],
            }
            plan_cache.write(cache_dir, phonenumbers.__version__, {name: arrays[name] for name in ARRAYS}, meta)
        return cls(arrays, regions, carriers, time.perf_counter() - start, slow_codes)

    # ---- resolving

    def resolve_e164(self, numbers: Sequence[str], hints: Sequence[str | None] | None = None) -> BatchResult:
        """Resolve a batch; ``+`` followed by digits is decided by the tables, the rest by phonenumbers.

        ``hints`` gives, per input, the region to read a national-format number
        in (phonenumbers.parse's second argument); it does not affect ``+`` input.
        """
        return self.resolve_scanned(numbers, *self.scan(numbers), hints)

    def resolve_scanned(
        self,
        numbers: Sequence[str],
        fast_idx: npt.NDArray[np.int64],
        fast_digits: npt.NDArray[np.int64],
        fast_len: npt.NDArray[np.int64],
        hints: Sequence[str | None] | None = None,
    ) -> BatchResult:
        """:meth:`resolve_e164` once the ``+``-and-digits rows are known: their positions, values and digit counts.

        Why apart: a bulk file's reader finds those rows in its own bytes, without
        a string per line (``bulk_input.LineBlock``). ``numbers[i]`` is read only
        for the rows the tables leave to phonenumbers (the rest of the inputs, and
        the scanned ones the arrays cannot decide), so it may build them lazily.
        """
        count = len(numbers)
        valid = np.zeros(count, dtype=bool)
        reason = np.zeros(count, dtype=np.int8)
        ntype = np.full(count, UNKNOWN, dtype=np.int8)
        region = np.full(count, NO_REGION, dtype=np.int16)
        carrier_col = np.full(count, -1, dtype=np.int32)
        digits = np.zeros(count, dtype=np.int64)

        slow_mask = np.ones(count, dtype=bool)
        if len(fast_idx):
            decided = self._fast(fast_idx, fast_digits, fast_len, valid, reason, ntype, region, carrier_col, digits)
            slow_mask[decided] = False

        slow_positions = np.flatnonzero(slow_mask).tolist()
        carriers = list(self.carriers)
        carrier_index = self.carrier_index
        extra: dict[str, int] = {}
        regions = list(self.regions)
        region_index = dict(self.region_index)
        long_e164: dict[int, str] = {}
        memo: dict[tuple[str, str | None], Reference] = {}
        if slow_positions:
            from numlookup.numbering.reference import reference  # phonenumbers' carrier data: only when needed
        for i in slow_positions:
            raw = numbers[i]
            hint = hints[i] if hints is not None else None
            ref = memo.get((raw, hint))
            if ref is None:
                ref = memo[(raw, hint)] = self._slow_reference(raw, hint, reference)
            valid[i] = ref.valid
            reason[i] = REASON_CODE[ref.reason]
            ntype[i] = ref.number_type
            if ref.region is not None:
                if ref.region not in region_index:
                    region_index[ref.region] = len(regions)
                    regions.append(ref.region)
                region[i] = region_index[ref.region]
            if ref.valid:
                name = ref.carrier
                index = carrier_index.get(name, extra.get(name))
                if index is None:
                    index = extra[name] = len(carriers)
                    carriers.append(name)
                carrier_col[i] = index
            if ref.e164 is not None:
                if len(ref.e164) <= 19:
                    digits[i] = int(ref.e164[1:])
                else:
                    long_e164[i] = ref.e164
        self.stats.numbers += count
        self.stats.slow += len(slow_positions)
        return BatchResult(
            valid,
            reason,
            ntype,
            region,
            carrier_col,
            digits,
            tuple(regions),
            tuple(carriers),
            len(slow_positions),
            long_e164,
        )

    def _slow_reference(self, raw: str, hint: str | None, reference: Callable[..., Reference]) -> Reference:
        """``reference(raw, hint)``, its carrier named by the carrier table where the table can name it.

        Why: the slow path's inputs are mostly text (``(+372) 5100-0001``,
        ``tel:…``, an extension); once phonenumbers has read them, their carrier is
        the table's lookup of the E.164 digits, exactly as for the fast path, and
        importing phonenumbers' carrier data for them cost more than reading them.
        """
        ref = reference(raw, hint, with_carrier=False)
        if not ref.valid or ref.number_type not in CARRIER_TYPES or ref.e164 is None:
            return ref
        name = self._table_carrier(ref.e164[1:])
        if name is None:
            return reference(raw, hint)
        return ref._replace(carrier=name)

    def _table_carrier(self, digits: str) -> str | None:
        """``carrier.name_for_number`` of a valid number of a carrier type, from the table; None where it cannot say."""
        if len(digits) > MAX_DIGITS:
            return None
        padded = int(digits) * 10 ** (MAX_DIGITS - len(digits))
        entry = int(self.carrier_entry[np.searchsorted(self.carrier_starts, padded, side="right") - 1])
        if entry < 0:
            return ""
        if int(self.entry_len[entry]) > len(digits):  # a longer prefix might follow it: the walk decides
            return None
        return self.carriers[int(self.entry_name[entry])]

    def scan(
        self, numbers: Sequence[str]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Positions, integer digits and digit counts of the inputs that are ``+`` and 1–17 ASCII digits.

        The shape check runs on one byte buffer of the joined batch; only the
        conversion of the survivors is per string, by ``int`` in C
        (``map``/``compress``), which is safe once the bytes are known to be
        ``+`` and ASCII digits.
        """
        count = len(numbers)
        if count == 0:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        joined = "\n".join(numbers)
        if joined.count("\n") != count - 1:  # an input holds a newline: blank those out for the scan
            joined = "\n".join("" if "\n" in s else s for s in numbers)
        buf = np.frombuffer(joined.encode("utf-8", "surrogatepass") + b"\n", dtype=np.uint8)
        ends = np.flatnonzero(buf == 10)
        starts = np.empty(count, dtype=np.int64)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
        nlen = ends - starts - 1  # characters after the "+"
        # Non-digits per line, its "+" and newline included (uint8 wraps: everything but 0-9 is > 9);
        # every line holds at least its newline, so no segment of reduceat is empty.
        nondigit = np.add.reduceat((buf - 48) > 9, starts, dtype=np.int32)
        # non-digits in [start, end]: the "+" and the newline, nothing else
        cand = (buf[starts] == 43) & (nlen >= 1) & (nlen <= MAX_KEYED) & (nondigit == 2)
        if cand.all():
            idx = np.arange(count, dtype=np.int64)
            chosen: Iterable[str] = numbers
        else:
            idx = np.flatnonzero(cand)
            chosen = compress(numbers, cand.tolist())
        n = nlen[idx]
        value = np.fromiter(map(int, chosen), dtype=np.int64, count=len(idx))
        return idx, value, n.astype(np.int64)

    def _fast(
        self,
        idx: npt.NDArray[np.int64],
        value: npt.NDArray[np.int64],
        length: npt.NDArray[np.int64],
        valid: npt.NDArray[np.bool_],
        reason: npt.NDArray[np.int8],
        ntype: npt.NDArray[np.int8],
        region: npt.NDArray[np.int16],
        carrier_col: npt.NDArray[np.int32],
        digits: npt.NDArray[np.int64],
    ) -> npt.NDArray[np.int64]:
        """Fill the columns for ``idx``; returns the positions the tables decided (the rest go slow)."""
        code = REASON_CODE
        # Work in key order: binary searches over sorted keys walk the tables almost linearly.
        order = np.argsort(length * KEY_BASE + value)
        idx, value, length = idx[order], value[order], length[order]
        decided = np.ones(len(idx), dtype=bool)
        # parse: "+" and fewer than 3 digits is not viable; else the calling code is the
        # shortest known prefix (_extract_country_code).
        tiny = length < 3
        cci = np.where(tiny, -1, self.cc3[value // POW10[np.maximum(length - 3, 0)]])
        known = cci >= 0
        reason_out = np.where(known, 0, code[InvalidReason.INVALID_COUNTRY_CODE]).astype(np.int64)
        reason_out[tiny] = code[InvalidReason.NOT_A_NUMBER]
        cci = np.maximum(cci, 0)
        cclen = self.cc_len[cci]
        cc = self.cc_codes[cci]
        nsn_len = length - cclen
        short = known & (nsn_len < 2)  # TOO_SHORT_NSN
        reason_out[short] = code[InvalidReason.TOO_SHORT]
        live = known & ~short

        key = length * KEY_BASE + value
        # parse: national prefix stripping (_maybe_strip_national_prefix_carrier_code + the length test).
        strip = np.zeros(len(idx), dtype=np.int64)
        sub = np.flatnonzero(live & (self.cc_strip[cci] > 0))  # only calling codes with a national prefix
        strip[sub] = _lookup(self.strip_starts, self.strip_values, key[sub])
        decided &= strip != SLOW
        sub = np.flatnonzero(live & (strip > 0))
        if len(sub):
            # The rewrite (compiler.Rewrite): put + nsn[keep_from:keep_to] + nsn[drop:].
            rule = strip[sub]
            n = nsn_len[sub]
            nsn = value[sub] % POW10[n]
            tail_len = n - self.strip_drop[rule]
            keep_from, keep_to = self.strip_from[rule].astype(np.int64), self.strip_to[rule].astype(np.int64)
            kept = (nsn // POW10[n - keep_to]) % POW10[keep_to - keep_from]
            rest_len = self.strip_put_len[rule] + (keep_to - keep_from) + tail_len
            rest = (self.strip_put[rule] * POW10[keep_to - keep_from] + kept) * POW10[tail_len] + nsn % POW10[tail_len]
            new_len = cclen[sub] + rest_len
            decided[sub[new_len > MAX_KEYED]] = False  # a rewrite past the keys' reach (none in the metadata)
            new_len = np.minimum(new_len, MAX_KEYED)
            rest_len = new_len - cclen[sub]
            new_value = cc[sub] * POW10[rest_len] + rest % POW10[rest_len]
            new_key = new_len * KEY_BASE + new_value
            gd_whole = _lookup(self.gd_starts, self.gd_values, key[sub]) > 0
            gd_rest = _lookup(self.gd_starts, self.gd_values, new_key) > 0
            long_enough = self.keep_by_len[cci[sub], np.clip(rest_len, 0, MAX_NSN)] > 0
            apply = ~(gd_whole & ~gd_rest) & long_enough
            done = sub[apply]
            value[done] = new_value[apply]
            length[done] = new_len[apply]
            nsn_len[done] = rest_len[apply]
            key[done] = new_key[apply]

        # is_possible_number_with_reason, on the main region's lengths.
        possible = self.reason_by_len[cci, np.minimum(nsn_len, MAX_NSN)]
        reason_out = np.where(live, possible, reason_out)
        # region_code_for_number + _number_type_helper, painted into one table.
        seg = np.searchsorted(self.main_starts, key, side="right") - 1
        where = self.main_region[seg]
        kind = self.main_type[seg]
        decided &= ~(live & (where == SLOW))
        ok = live & (reason_out == 0) & (kind != UNKNOWN) & (where >= 0)
        reason_out = np.where(live & (reason_out == 0) & ~ok, code[InvalidReason.INVALID_FOR_REGION], reason_out)

        # carrier.name_for_number: longest 'en' prefix of the E.164 digits, for mobile-like types.
        carrier_out = np.where(ok, 0, -1)
        sub = np.flatnonzero(ok & carrier_typed(kind))
        if len(sub):
            padded = value[sub] * POW10[np.maximum(MAX_DIGITS - length[sub], 0)]
            entry = _lookup(self.carrier_starts, self.carrier_entry, padded)
            found = entry >= 0
            safe_entry = np.maximum(entry, 0)
            decided[sub[found & (self.entry_len[safe_entry] > length[sub])]] = False  # prefix longer than the number
            decided[sub[length[sub] > MAX_DIGITS]] = False  # beyond the carrier table's padding (no region has one)
            carrier_out[sub[found]] = self.entry_name[safe_entry[found]]

        rows = idx[decided]
        valid[rows] = ok[decided]
        reason[rows] = reason_out[decided]
        ntype[rows] = np.where(ok, kind, UNKNOWN)[decided]
        region[rows] = np.where(ok, where, NO_REGION)[decided]
        carrier_col[rows] = carrier_out[decided]
        digits[rows] = np.where(known & ~short, value, 0)[decided]
        return rows
