"""A batch resolver compiled from libphonenumber's metadata: sorted interval tables and numpy.

Why: libphonenumber answers one number at a time by running a dozen regexes
(parse, national-prefix stripping, the general pattern, then each number type
in turn, then each region sharing the calling code) and a prefix walk for the
carrier. That costs tens of microseconds a number. Every one of those regexes
is finite over digit strings of a given length, so :mod:`patterns` turns them
into intervals once, and this module paints the intervals into a few sorted
tables keyed by ``L * 10**15 + int(digits)`` (``digits`` = calling code +
national significant number, ``L`` its length; the length is part of the key
because ``fullmatch`` depends on it). A batch is then a handful of
``numpy.searchsorted`` calls.

Correctness is libphonenumber's: every rule below mirrors a named function of
``phonenumbers`` (``parse``, ``_maybe_strip_national_prefix_carrier_code``,
``is_possible_number_with_reason``, ``region_code_for_number``,
``_number_type_helper``, ``carrier.name_for_number``), and the test suite and
``bench/engine.py`` compare the two on every number of a seeded corpus. What
the tables cannot decide exactly (input that is not ``+`` and digits, calling
codes whose patterns or national-prefix rules are beyond the expander, carrier
prefixes longer than the number) goes through phonenumbers itself — the *slow
path* — and is counted in :attr:`Engine.stats`.

The compiled tables are cached as one ``.npz`` keyed by the phonenumbers
version, so a process that starts on a warm cache loads in milliseconds.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import compress
from pathlib import Path
from typing import Any, NamedTuple, Self

import numpy as np
import numpy.typing as npt
import phonenumbers
from phonenumbers import (
    COUNTRY_CODE_TO_REGION_CODE,
    NumberParseException,
    PhoneMetadata,
    PhoneNumberType,
    ValidationResult,
    carrier,
)
from phonenumbers.phonenumberutil import _test_number_length, region_code_for_country_code

from numlookup.numbering import patterns
from numlookup.numbering.models import InvalidReason
from numlookup.numbering.tables import POW10, paint

FORMAT_VERSION = 2  # bump when the table layout or the compile rules change
E15 = 10**15
MAX_DIGITS = 15  # E.164; longer inputs take the slow path
MAX_NSN = 17  # phonenumbers' _MAX_LENGTH_FOR_NSN
NO_REGION = -1
SLOW = -2  # a table value meaning "the tables cannot decide: ask phonenumbers"
UNKNOWN = int(PhoneNumberType.UNKNOWN)
NON_GEO = "001"

# Reason codes: 0 = valid, then InvalidReason in declaration order.
REASONS: tuple[InvalidReason | None, ...] = (None, *InvalidReason)
_REASON_CODE = {reason: code for code, reason in enumerate(REASONS)}

_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: InvalidReason.INVALID_COUNTRY_CODE,
    NumberParseException.NOT_A_NUMBER: InvalidReason.NOT_A_NUMBER,
    NumberParseException.TOO_SHORT_AFTER_IDD: InvalidReason.TOO_SHORT,
    NumberParseException.TOO_SHORT_NSN: InvalidReason.TOO_SHORT,
    NumberParseException.TOO_LONG: InvalidReason.TOO_LONG,
}
_POSSIBLE_REASONS = {
    ValidationResult.INVALID_COUNTRY_CODE: InvalidReason.INVALID_COUNTRY_CODE,
    ValidationResult.TOO_SHORT: InvalidReason.TOO_SHORT,
    ValidationResult.TOO_LONG: InvalidReason.TOO_LONG,
    ValidationResult.INVALID_LENGTH: InvalidReason.INVALID_LENGTH,
}
# _number_type_helper's order; fixed line and mobile are handled after these.
_TYPE_ORDER = (
    ("premium_rate", PhoneNumberType.PREMIUM_RATE),
    ("toll_free", PhoneNumberType.TOLL_FREE),
    ("shared_cost", PhoneNumberType.SHARED_COST),
    ("voip", PhoneNumberType.VOIP),
    ("personal_number", PhoneNumberType.PERSONAL_NUMBER),
    ("pager", PhoneNumberType.PAGER),
    ("uan", PhoneNumberType.UAN),
    ("voicemail", PhoneNumberType.VOICEMAIL),
)
# carrier._is_mobile: only these types get a carrier name.
CARRIER_TYPES = (int(PhoneNumberType.MOBILE), int(PhoneNumberType.FIXED_LINE_OR_MOBILE), int(PhoneNumberType.PAGER))
TYPE_NAMES: dict[int, str] = {
    int(v): k.lower() for k, v in vars(PhoneNumberType).items() if k.isupper() and isinstance(v, int)
}

Array = npt.NDArray[Any]


# --------------------------------------------------------------------------- reference


class Reference(NamedTuple):
    """What phonenumbers says about one input, in the engine's terms."""

    valid: bool
    reason: InvalidReason | None
    number_type: int  # PhoneNumberType; UNKNOWN when not valid
    region: str | None  # only for valid numbers
    carrier: str  # carrier.name_for_number(…, "en"); "" when none or not valid
    e164: str | None  # None when the input does not parse


def reference(raw: str, region: str | None = None) -> Reference:
    """The slow path, and the definition of correct: the checks ``Resolver`` makes, in its order.

    Parse (its errors are reasons), then ``is_possible_number_with_reason``, then
    the region ``region_code_for_number`` picks and ``is_valid_number_for_region``;
    type and carrier only for valid numbers.
    """
    try:
        number = phonenumbers.parse(raw, region)
    except NumberParseException as exc:
        return Reference(False, _PARSE_REASONS.get(exc.error_type, InvalidReason.NOT_A_NUMBER), UNKNOWN, None, "", None)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible in _POSSIBLE_REASONS:
        return Reference(False, _POSSIBLE_REASONS[possible], UNKNOWN, None, "", e164)
    where = phonenumbers.region_code_for_number(number)
    if where is None or not phonenumbers.is_valid_number_for_region(number, where):
        return Reference(False, InvalidReason.INVALID_FOR_REGION, UNKNOWN, None, "", e164)
    return Reference(
        True, None, int(phonenumbers.number_type(number)), where, carrier.name_for_number(number, "en"), e164
    )


# --------------------------------------------------------------------------- results


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
class EngineStats:
    """How many numbers the engine resolved and how many of them needed phonenumbers."""

    numbers: int = 0
    slow: int = 0

    @property
    def slow_share(self) -> float:
        return self.slow / self.numbers if self.numbers else 0.0


# --------------------------------------------------------------------------- compile helpers


def _metadata(cc: int, region: str) -> PhoneMetadata:
    md = (
        PhoneMetadata.metadata_for_nongeo_region(cc) if region == NON_GEO else PhoneMetadata.metadata_for_region(region)
    )
    assert md is not None, (cc, region)  # every region of COUNTRY_CODE_TO_REGION_CODE has metadata
    return md


def _main_metadata(cc: int) -> PhoneMetadata:
    """The metadata parse and is_possible_number use: the calling code's main region."""
    md = PhoneMetadata.metadata_for_region_or_calling_code(cc, region_code_for_country_code(cc))
    assert md is not None, cc
    return md


def _paint(
    lo: npt.NDArray[np.int64],
    hi: npt.NDArray[np.int64],
    values: npt.NDArray[np.int64],
    rank: npt.NDArray[np.int64],
    default: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Flatten possibly nested intervals into disjoint segments; a higher rank overwrites a lower one."""
    if len(lo) == 0:
        return np.zeros(1, dtype=np.int64), np.full(1, default, dtype=np.int64)
    return paint(lo, hi, values.astype(np.int64), np.argsort(rank, kind="stable"), default)


def _lookup(
    starts: npt.NDArray[np.int64], values: npt.NDArray[np.int64], keys: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """The value of the segment holding each key (tables start at key 0, so every key has one)."""
    return values[np.searchsorted(starts, keys, side="right") - 1]


def _key_intervals(cc: int, per_len: dict[int, list[tuple[int, int]]]) -> tuple[list[int], list[int]]:
    """National-number intervals of each length as key intervals (``L * 10**15 + int(cc + nsn)``)."""
    cclen = len(str(cc))
    los: list[int] = []
    his: list[int] = []
    for n, intervals in per_len.items():
        base = (cclen + n) * E15 + cc * 10**n
        for a, b in intervals:
            los.append(base + a)
            his.append(base + b)
    return los, his


def _lengths(desc: phonenumbers.PhoneNumberDesc | None, max_n: int) -> tuple[int, ...]:
    """The lengths a desc can match under _is_number_matching_desc (no list: any length)."""
    if desc is None or not desc.national_number_pattern:
        return ()
    if len(desc.possible_length) == 0:
        return tuple(range(1, max_n + 1))
    return tuple(sorted({n for n in desc.possible_length if 1 <= n <= max_n}))


class _Coverage:
    """Membership of elementary segments in interval sets, for one calling code."""

    def __init__(self, cc: int, max_n: int, sets: list[dict[int, list[tuple[int, int]]]]) -> None:
        cclen = len(str(cc))
        all_lo, all_hi = [], []
        self.sets: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]] = []
        for per_len in sets:
            lo, hi = _key_intervals(cc, per_len)
            self.sets.append((np.array(lo, dtype=np.int64), np.array(hi, dtype=np.int64)))
            all_lo.extend(lo)
            all_hi.extend(hi)
        for n in range(1, max_n + 1):  # the whole calling code, so its gaps become segments too
            base = (cclen + n) * E15 + cc * 10**n
            all_lo.append(base)
            all_hi.append(base + 10**n - 1)
        self.bounds = np.unique(
            np.concatenate([np.array(all_lo, dtype=np.int64), np.array(all_hi, dtype=np.int64) + 1])
        )

    def covered(self, i: int) -> npt.NDArray[np.bool_]:
        lo, hi = self.sets[i]
        diff = np.zeros(len(self.bounds) + 1, dtype=np.int64)
        np.add.at(diff, np.searchsorted(self.bounds, lo), 1)
        np.add.at(diff, np.searchsorted(self.bounds, hi + 1), -1)
        return np.cumsum(diff[:-1]) > 0


def _region_types(
    cc: int, regions: Sequence[str], max_n: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Segments of one calling code: (starts, region position in ``regions`` or -1, type).

    Mirrors ``region_code_for_number`` (first region whose leading digits match,
    else whose type is not UNKNOWN) and ``_number_type_helper`` for that region.
    Raises TooComplex when a pattern is beyond the expander.
    """
    sets: list[dict[int, list[tuple[int, int]]]] = []
    plan = []  # per region: (general, [(set, code)], fixed, mobile, same, leading)
    all_lengths = tuple(range(1, max_n + 1))
    for region in regions:
        md = _metadata(cc, region)

        def add(desc: phonenumbers.PhoneNumberDesc | None) -> int | None:
            lengths = _lengths(desc, max_n)
            if not lengths:
                return None
            assert desc is not None
            sets.append(patterns.full_match_intervals(desc.national_number_pattern, lengths))
            return len(sets) - 1

        general = add(md.general_desc)
        typed = [(add(getattr(md, name)), int(code)) for name, code in _TYPE_ORDER]
        fixed = add(md.fixed_line)
        mobile = add(md.mobile)
        leading = None
        if md.leading_digits is not None:
            sets.append(patterns.prefix_intervals(md.leading_digits, all_lengths))
            leading = len(sets) - 1
        plan.append(
            (
                md.leading_digits is not None,
                general,
                typed,
                fixed,
                mobile,
                bool(md.same_mobile_and_fixed_line_pattern),
                leading,
            )
        )

    cov = _Coverage(cc, max_n, sets)
    nseg = len(cov.bounds)
    cache: dict[int, npt.NDArray[np.bool_]] = {}

    def covered(i: int | None) -> npt.NDArray[np.bool_]:
        if i is None:
            return np.zeros(nseg, dtype=bool)
        if i not in cache:
            cache[i] = cov.covered(i)
        return cache[i]

    assigned = np.full(nseg, NO_REGION, dtype=np.int64)
    out_type = np.full(nseg, UNKNOWN, dtype=np.int64)
    for position, (has_leading, general, typed, fixed, mobile, same, leading) in enumerate(plan):
        kind = np.full(nseg, UNKNOWN, dtype=np.int64)
        open_ = covered(general).copy()
        for index, code in typed:
            hit = open_ & covered(index)
            kind[hit] = code
            open_ &= ~hit
        fixed_hit = open_ & covered(fixed)
        if same:
            kind[fixed_hit] = PhoneNumberType.FIXED_LINE_OR_MOBILE
        else:
            mob = covered(mobile)
            kind[fixed_hit & mob] = PhoneNumberType.FIXED_LINE_OR_MOBILE
            kind[fixed_hit & ~mob] = PhoneNumberType.FIXED_LINE
            kind[open_ & ~fixed_hit & mob] = PhoneNumberType.MOBILE
        claim = covered(leading) if has_leading else kind != UNKNOWN
        take = (assigned == NO_REGION) & claim
        assigned[take] = position
        out_type[take] = kind[take]
    invalid = out_type == UNKNOWN
    assigned[invalid] = NO_REGION
    return cov.bounds, assigned, out_type


# --------------------------------------------------------------------------- the engine


class Engine:
    """Compiled tables plus the slow path; the tables are immutable after load.

    ``stats`` is the only mutable state (two counters); share one engine per process.
    """

    # The compiled tables (see compile_tables); set from one dict so that load and compile agree.
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
    carrier_starts: Array
    carrier_entry: Array
    entry_name: Array
    entry_len: Array

    _ARRAYS = (
        "cc_codes",
        "cc_len",
        "cc3",
        "cc_strip",
        "reason_by_len",
        "keep_by_len",
        "main_starts",
        "main_region",
        "main_type",
        "gd_starts",
        "gd_values",
        "strip_starts",
        "strip_values",
        "carrier_starts",
        "carrier_entry",
        "entry_name",
        "entry_len",
    )

    def __init__(
        self,
        arrays: dict[str, Array],
        regions: Sequence[str],
        carriers: Sequence[str],
        load_seconds: float,
        slow_codes: Sequence[int],
    ) -> None:
        for name in self._ARRAYS:
            setattr(self, name, arrays[name])
        self.regions = tuple(regions)
        self.carriers = tuple(carriers)
        self.region_index = {r: i for i, r in enumerate(self.regions)}
        self.carrier_index = {c: i for i, c in enumerate(self.carriers)}
        self.load_seconds = load_seconds
        self.slow_codes = tuple(slow_codes)  # calling codes that always take the slow path
        self.stats = EngineStats()
        phonenumbers.enable_pattern_cache()

    # ---- loading

    @classmethod
    def cache_name(cls) -> str:
        return f"numbering-engine-v{FORMAT_VERSION}-phonenumbers-{phonenumbers.__version__}.npz"

    @classmethod
    def load(cls, cache_dir: Path | None = None) -> Self:
        """Load the compiled tables from ``cache_dir`` or compile them (and cache them there).

        The cache file name carries the phonenumbers version, so upgrading the
        library recompiles instead of answering from stale metadata.
        """
        start = time.perf_counter()
        path = cache_dir / cls.cache_name() if cache_dir is not None else None
        if path is not None and path.exists():
            try:
                with np.load(path, allow_pickle=False) as data:
                    arrays = {name: data[name] for name in cls._ARRAYS}
                    regions = [str(x) for x in data["regions"]]
                    carriers = [str(x) for x in data["carriers"]]
                    slow_codes = [int(x) for x in data["slow_codes"]]
                return cls(arrays, regions, carriers, time.perf_counter() - start, slow_codes)
            except (OSError, KeyError, ValueError):
                pass  # a damaged cache is rebuilt below
        arrays, regions, carriers, slow_codes = compile_tables()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    extra = {
                        "regions": np.array(regions),
                        "carriers": np.array(carriers, dtype=str),
                        "slow_codes": np.array(slow_codes, dtype=np.int64),
                    }
                    np.savez(fh, **arrays, **extra)  # type: ignore[arg-type]  # stubs fear an "allow_pickle" key
                os.replace(tmp, path)  # readers never see a half-written cache
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        return cls(arrays, regions, carriers, time.perf_counter() - start, slow_codes)

    # ---- resolving

    def resolve_e164(self, numbers: Sequence[str], hints: Sequence[str | None] | None = None) -> BatchResult:
        """Resolve a batch; ``+`` followed by digits is decided by the tables, the rest by phonenumbers.

        ``hints`` gives, per input, the region to read a national-format number
        in (phonenumbers.parse's second argument); it does not affect ``+`` input.
        """
        count = len(numbers)
        valid = np.zeros(count, dtype=bool)
        reason = np.zeros(count, dtype=np.int8)
        ntype = np.full(count, UNKNOWN, dtype=np.int8)
        region = np.full(count, NO_REGION, dtype=np.int16)
        carrier_col = np.full(count, -1, dtype=np.int32)
        digits = np.zeros(count, dtype=np.int64)

        fast_idx, fast_digits, fast_len = self._scan(numbers)
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
        for i in slow_positions:
            raw = numbers[i]
            hint = hints[i] if hints is not None else None
            ref = memo.get((raw, hint))
            if ref is None:
                ref = memo[(raw, hint)] = reference(raw, hint)
            valid[i] = ref.valid
            reason[i] = _REASON_CODE[ref.reason]
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

    def _scan(
        self, numbers: Sequence[str]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
        """Positions, integer digits and digit counts of the inputs that are ``+`` and 1–15 ASCII digits.

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
        nondigit = np.cumsum((buf - 48) > 9, dtype=np.int32)  # uint8 wraps: everything but 0-9 is > 9
        # non-digits in [start, end]: the "+" and the newline, nothing else
        cand = (buf[starts] == 43) & (nlen >= 1) & (nlen <= MAX_DIGITS) & (nondigit[ends] - nondigit[starts] == 1)
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
        code = _REASON_CODE
        # Work in key order: binary searches over sorted keys walk the tables almost linearly.
        order = np.argsort(length * E15 + value)
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

        key = length * E15 + value
        # parse: national prefix stripping (_maybe_strip_national_prefix_carrier_code + the length test).
        strip = np.zeros(len(idx), dtype=np.int64)
        sub = np.flatnonzero(live & (self.cc_strip[cci] > 0))  # only calling codes with a national prefix
        strip[sub] = _lookup(self.strip_starts, self.strip_values, key[sub])
        decided &= strip != SLOW
        sub = np.flatnonzero(live & (strip > 0))
        if len(sub):
            k = strip[sub]
            rest_len = nsn_len[sub] - k
            scale = POW10[np.maximum(rest_len, 0)]
            new_value = cc[sub] * scale + value[sub] % scale
            new_len = length[sub] - k
            new_key = new_len * E15 + new_value
            gd_whole = _lookup(self.gd_starts, self.gd_values, key[sub]) > 0
            gd_rest = _lookup(self.gd_starts, self.gd_values, new_key) > 0
            kept = self.keep_by_len[cci[sub], np.clip(rest_len, 0, MAX_NSN)] > 0
            apply = ~(gd_whole & ~gd_rest) & kept
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
        sub = np.flatnonzero(ok & np.isin(kind, CARRIER_TYPES))
        if len(sub):
            padded = value[sub] * POW10[np.maximum(MAX_DIGITS - length[sub], 0)]
            entry = _lookup(self.carrier_starts, self.carrier_entry, padded)
            found = entry >= 0
            safe_entry = np.maximum(entry, 0)
            decided[sub[found & (self.entry_len[safe_entry] > length[sub])]] = False  # prefix longer than the number
            carrier_out[sub[found]] = self.entry_name[safe_entry[found]]

        rows = idx[decided]
        valid[rows] = ok[decided]
        reason[rows] = reason_out[decided]
        ntype[rows] = np.where(ok, kind, UNKNOWN)[decided]
        region[rows] = np.where(ok, where, NO_REGION)[decided]
        carrier_col[rows] = carrier_out[decided]
        digits[rows] = np.where(known & ~short, value, 0)[decided]
        return rows


# --------------------------------------------------------------------------- compile


def compile_tables() -> tuple[dict[str, Array], list[str], list[str], list[int]]:
    """Build every table from the installed phonenumbers' metadata and carrier data."""
    codes = sorted(COUNTRY_CODE_TO_REGION_CODE)
    regions: list[str] = []
    for cc in codes:
        for r in COUNTRY_CODE_TO_REGION_CODE[cc]:
            if r not in regions:
                regions.append(r)
    region_pos = {r: i for i, r in enumerate(regions)}

    cc_codes = np.array(codes, dtype=np.int64)
    cc_len = np.array([len(str(c)) for c in codes], dtype=np.int64)
    cc_at = {c: i for i, c in enumerate(codes)}
    cc3 = np.full(1000, -1, dtype=np.int64)
    for p in range(100, 1000):
        s = str(p)
        for width in (1, 2, 3):  # _extract_country_code: shortest known prefix wins
            if int(s[:width]) in cc_at:
                cc3[p] = cc_at[int(s[:width])]
                break

    possible_code = {
        ValidationResult.TOO_SHORT: _REASON_CODE[InvalidReason.TOO_SHORT],
        ValidationResult.TOO_LONG: _REASON_CODE[InvalidReason.TOO_LONG],
        ValidationResult.INVALID_LENGTH: _REASON_CODE[InvalidReason.INVALID_LENGTH],
    }
    not_kept = (ValidationResult.TOO_SHORT, ValidationResult.IS_POSSIBLE_LOCAL_ONLY, ValidationResult.INVALID_LENGTH)
    reason_by_len = np.zeros((len(codes), MAX_NSN + 1), dtype=np.int64)
    keep_by_len = np.zeros((len(codes), MAX_NSN + 1), dtype=np.int64)
    for i, cc in enumerate(codes):
        md = _main_metadata(cc)
        for n in range(MAX_NSN + 1):
            result = _test_number_length("5" * n, md)
            reason_by_len[i, n] = possible_code.get(result, 0)
            keep_by_len[i, n] = int(n > 0 and result not in not_kept)

    main_lo: list[npt.NDArray[np.int64]] = []
    main_region: list[npt.NDArray[np.int64]] = []
    main_type: list[npt.NDArray[np.int64]] = []
    gd_lo: list[int] = []
    gd_hi: list[int] = []
    st_lo: list[int] = []
    st_hi: list[int] = []
    st_val: list[int] = []
    st_rank: list[int] = []
    slow_codes: list[int] = []
    for cc in codes:
        cclen = len(str(cc))
        max_n = MAX_DIGITS - cclen
        whole_lo = [(cclen + n) * E15 + cc * 10**n for n in range(1, max_n + 1)]
        whole_hi = [lo + 10**n - 1 for lo, n in zip(whole_lo, range(1, max_n + 1), strict=True)]
        members = COUNTRY_CODE_TO_REGION_CODE[cc]
        try:
            starts, assigned, kind = _region_types(cc, members, max_n)
            main_lo.append(starts)
            main_region.append(
                np.where(
                    assigned >= 0, [region_pos[members[a]] if a >= 0 else -1 for a in assigned.tolist()], NO_REGION
                )
            )
            main_type.append(kind)
        except patterns.TooComplex:
            slow_codes.append(cc)
            main_lo.append(np.array(whole_lo, dtype=np.int64))
            main_region.append(np.full(len(whole_lo), SLOW, dtype=np.int64))
            main_type.append(np.full(len(whole_lo), UNKNOWN, dtype=np.int64))
            main_lo.append(np.array(whole_hi, dtype=np.int64) + 1)
            main_region.append(np.full(len(whole_lo), NO_REGION, dtype=np.int64))
            main_type.append(np.full(len(whole_lo), UNKNOWN, dtype=np.int64))

        md = _main_metadata(cc)
        npfp = md.national_prefix_for_parsing
        if not npfp:
            continue
        transform = bool(md.national_prefix_transform_rule)
        options: list[tuple[str, bool]] | None = None
        if not transform:
            try:
                options = patterns.literal_strings(npfp, max_n)
                assert md.general_desc is not None
                gd = patterns.full_match_intervals(md.general_desc.national_number_pattern, tuple(range(1, max_n + 1)))
            except patterns.TooComplex:
                options = None
        if options is not None:
            # Exact: the first option (in re's order) that starts the number is stripped,
            # unless the general pattern matched before and not after; the GD table decides that.
            lo, hi = _key_intervals(cc, gd)
            gd_lo.extend(lo)
            gd_hi.extend(hi)
            total = len(options)
            for n in range(1, max_n + 1):
                base = (cclen + n) * E15 + cc * 10**n
                for priority, (text, anchored) in enumerate(options):
                    if len(text) > n or (anchored and len(text) != n):
                        continue
                    free = 10 ** (n - len(text))
                    start = base + (int(text) if text else 0) * free
                    st_lo.append(start)
                    st_hi.append(start + free - 1)
                    st_val.append(len(text))
                    st_rank.append(total - priority)  # re.match takes the first option that fits
            continue
        # Transform rules (or a prefix language too large to list): numbers the prefix pattern
        # can match non-empty go to phonenumbers; an empty match changes nothing.
        try:
            sequences = patterns.match_sequences(npfp, max_n)
            total = len(sequences)
            limit = [0]
            for n in range(1, max_n + 1):
                base = (cclen + n) * E15 + cc * 10**n
                for priority, (seq, anchored) in enumerate(sequences):
                    if len(seq) > n or (anchored and len(seq) != n):
                        continue
                    for a, b in patterns.sequence_intervals(seq, n - len(seq), limit):
                        st_lo.append(base + a)
                        st_hi.append(base + b)
                        st_val.append(SLOW if seq else 0)
                        st_rank.append(total - priority)
        except patterns.TooComplex:
            st_lo.extend(whole_lo)
            st_hi.extend(whole_hi)
            st_val.extend([SLOW] * len(whole_lo))
            st_rank.extend([0] * len(whole_lo))

    main_starts = np.concatenate([np.zeros(1, dtype=np.int64), *main_lo])
    main_r = np.concatenate([np.full(1, NO_REGION, dtype=np.int64), *main_region])
    main_t = np.concatenate([np.full(1, UNKNOWN, dtype=np.int64), *main_type])
    order = np.argsort(main_starts, kind="stable")
    main_starts, main_r, main_t = main_starts[order], main_r[order], main_t[order]
    keep = np.ones(len(main_starts), dtype=bool)
    keep[1:] = (main_r[1:] != main_r[:-1]) | (main_t[1:] != main_t[:-1])
    main_starts, main_r, main_t = main_starts[keep], main_r[keep], main_t[keep]

    gd_merged = patterns.merge(zip(gd_lo, gd_hi, strict=True))
    gd_starts, gd_values = _paint(
        np.array([a for a, _ in gd_merged], dtype=np.int64),
        np.array([b for _, b in gd_merged], dtype=np.int64),
        np.ones(len(gd_merged), dtype=np.int64),
        np.zeros(len(gd_merged), dtype=np.int64),
        0,
    )
    strip_starts, strip_values = _paint(
        np.array(st_lo, dtype=np.int64),
        np.array(st_hi, dtype=np.int64),
        np.array(st_val, dtype=np.int64),
        np.array(st_rank, dtype=np.int64),
        0,
    )

    carrier_starts, carrier_entry, entry_name, entry_len, carriers = _compile_carriers()
    cc_strip = np.array([int(bool(_main_metadata(cc).national_prefix_for_parsing)) for cc in codes], dtype=np.int8)
    arrays: dict[str, Array] = {
        "cc_codes": cc_codes,
        "cc_strip": cc_strip,
        "cc_len": cc_len,
        "cc3": cc3,
        "reason_by_len": reason_by_len.astype(np.int8),
        "keep_by_len": keep_by_len.astype(np.int8),
        "main_starts": main_starts,
        "main_region": main_r.astype(np.int16),
        "main_type": main_t.astype(np.int8),
        "gd_starts": gd_starts,
        "gd_values": gd_values.astype(np.int8),
        "strip_starts": strip_starts,
        "strip_values": strip_values.astype(np.int8),
        "carrier_starts": carrier_starts,
        "carrier_entry": carrier_entry.astype(np.int32),
        "entry_name": entry_name.astype(np.int32),
        "entry_len": entry_len.astype(np.int8),
    }
    return arrays, regions, carriers, slow_codes


def _compile_carriers() -> tuple[
    npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], list[str]
]:
    """carrier.name_for_number's prefix walk as a longest-prefix table over 15-digit padded numbers.

    A prefix whose language entry resolves (``prefix._find_lang``, as the walk
    does) is an entry; one that does not is skipped, as the walk skips it. An
    entry may name ``""``, which stops the walk: it is kept.
    """
    from phonenumbers.carrierdata import CARRIER_DATA
    from phonenumbers.prefix import _find_lang

    carriers = [""]
    index = {"": 0}
    lo: list[int] = []
    hi: list[int] = []
    entries: list[int] = []
    ranks: list[int] = []
    entry_name: list[int] = []
    entry_len: list[int] = []
    for prefix, names in CARRIER_DATA.items():
        name = _find_lang(names, "en", None, None)
        if name is None or len(prefix) > MAX_DIGITS:
            continue
        if name not in index:
            index[name] = len(carriers)
            carriers.append(name)
        lo.append(int(prefix.ljust(MAX_DIGITS, "0")))
        hi.append(int(prefix.ljust(MAX_DIGITS, "9")))
        entries.append(len(entry_name))
        ranks.append(len(prefix))
        entry_name.append(index[name])
        entry_len.append(len(prefix))
    starts, values = _paint(
        np.array(lo, dtype=np.int64),
        np.array(hi, dtype=np.int64),
        np.array(entries, dtype=np.int64),
        np.array(ranks, dtype=np.int64),
        -1,
    )
    return starts, values, np.array(entry_name, dtype=np.int64), np.array(entry_len, dtype=np.int64), carriers


# --------------------------------------------------------------------------- agreement corpus


_GARBAGE = (
    "",
    " ",
    "+",
    "++",
    "abc",
    "+abc",
    "hello world",
    "+44 (0) 20 7946 0958",
    "tel:+441234567890",
    "+1-800-FLOWERS",
    "0044 20 7946 0958",
    "+٣٧٢٥١٠٠٠٠٠١",
    "+３７２５１０００００１",
    "+372 5100 0001 ext. 12",
    "+" + "9" * 20,
    "1" * 40,
    "+00",
    "+0",
    "+1",
    "+12",
    "+123",
    "(+372) 5100-0001",
    "+372\n51000001",
    "+44 7700 900 123 x",
)


def sample_corpus(size: int, seed: int = 2024) -> tuple[list[str], list[str | None]]:
    """A reproducible mix of inputs over every region, for agreement tests and the benchmark.

    Why here: the suite (a small corpus) and ``bench/engine.py`` (a million) must
    draw from one definition. About 95% is ``+`` E.164 input: example numbers of
    every type of every region and their neighbours (±1, truncated, extended,
    trailing digits replaced), random digits after real calling codes, random
    digits; the rest is national formats with a region hint and garbage.
    Returns the inputs and, per input, the region hint (None for ``+`` input).
    """
    import random

    rng = random.Random(seed)
    regions = sorted(phonenumbers.SUPPORTED_REGIONS)
    types = [t for t in range(11)]
    examples: list[tuple[str, str]] = []  # (region, national significant number)
    codes: dict[str, int] = {}
    for region in regions:
        codes[region] = phonenumbers.country_code_for_region(region)
        for t in types:
            ex = phonenumbers.example_number_for_type(region, t)
            if ex is not None:
                examples.append((region, phonenumbers.national_significant_number(ex)))
    for cc in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        for t in types:
            ex = phonenumbers.example_number_for_non_geo_entity(cc) if t == 0 else None
            md = PhoneMetadata.metadata_for_nongeo_region(cc)
            for name in ("mobile", "toll_free", "premium_rate", "voip", "uan", "shared_cost", "personal_number"):
                desc = getattr(md, name, None)
                if desc is not None and desc.example_number:
                    examples.append((f"+{cc}", desc.example_number))
            if ex is not None:
                examples.append((f"+{cc}", phonenumbers.national_significant_number(ex)))
    calling_codes = sorted(COUNTRY_CODE_TO_REGION_CODE)

    def cc_of(region: str) -> int:
        return int(region[1:]) if region.startswith("+") else codes[region]

    def digits(n: int) -> str:
        return "".join(rng.choices("0123456789", k=n))

    out: list[str] = []
    hints: list[str | None] = []
    for ex_region, nsn in examples:  # every example as it is
        out.append(f"+{cc_of(ex_region)}{nsn}")
        hints.append(None)
    while len(out) < size:
        roll = rng.random()
        hint: str | None = None
        if roll < 0.45:  # an example with its tail replaced: mostly valid numbers across all ranges
            ex_region, nsn = rng.choice(examples)
            keep = rng.randint(max(1, len(nsn) - 7), len(nsn))
            text = f"+{cc_of(ex_region)}{nsn[:keep]}{digits(len(nsn) - keep)}"
        elif roll < 0.60:  # ±1, truncated, extended
            ex_region, nsn = rng.choice(examples)
            value = int(nsn) + rng.choice((-1, 1, -10, 10))
            variant = rng.choice(("step", "cut", "grow", "cut2", "grow2"))
            if variant == "step":
                body = str(max(value, 0)).zfill(len(nsn))
            elif variant.startswith("cut"):
                body = nsn[: -1 if variant == "cut" else -2]
            else:
                body = nsn + digits(1 if variant == "grow" else 2)
            text = f"+{cc_of(ex_region)}{body}"
        elif roll < 0.85:  # random digits after a real calling code
            cc = rng.choice(calling_codes)
            n = rng.randint(1, 15 - len(str(cc)))
            text = f"+{cc}{digits(n)}"
        elif roll < 0.95:  # random digits
            text = "+" + digits(rng.randint(3, 16))
        elif roll < 0.99:  # national format with a region hint
            ex_region, nsn = rng.choice(examples)
            if ex_region.startswith("+"):
                continue
            hint = ex_region
            number = phonenumbers.parse(f"+{cc_of(ex_region)}{nsn[:-3]}{digits(3)}")
            text = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
            if rng.random() < 0.3:
                text = "0" + digits(rng.randint(5, 11))
        else:
            text = rng.choice(_GARBAGE)
        out.append(text)
        hints.append(hint)
    return out[:size], hints[:size]
