"""Batch resolution of number strings, shared by the HTTP server and the CLI.

The resolver takes a list and returns a list: a single lookup is a batch of one.
Validity, type, region and carrier come from the compiled engine (libphonenumber's
metadata as interval tables, with phonenumbers itself as the slow path); the
networks from the shipped registry, the shipped number blocks (which beat
libphonenumber's prefixes) and the operator's imported ranges and ported numbers
(which beat both). ``resolve_columns`` keeps everything in arrays for bulk work;
``resolve`` turns the same columns into ``Resolution`` objects for the API.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from numlookup.numbering.blocks import ShippedBlocks
from numlookup.numbering.countries import NON_GEOGRAPHIC, country_for
from numlookup.numbering.interning import Interner, group
from numlookup.numbering.intervals import NO_NETWORK, POW10, WIDTH
from numlookup.numbering.layout import (
    CARRIER_TYPES,
    KEY_BASE,
    MAX_DIGITS,
    MAX_KEYED,
    MAX_NSN,
    NO_REGION,
    REASON_CODE,
    REASONS,
    SLOW,
    TYPE_NAMES,
    UNKNOWN,
    carrier_typed,
)
from numlookup.numbering.models import Country, InvalidReason, Network, Resolution
from numlookup.numbering.networks import NetworkRegistry
from numlookup.numbering.operator_data import DataNetwork, OperatorData, PortedMap
from numlookup.numbering.plan import BatchResult, NumberingPlan

_SEPARATORS = str.maketrans("", "", " \t-.()/\u00a0")
# Up to this many distinct numbers a batch is resolved one number at a time (``Resolver.resolve_small``).
# ``python bench/request_core.py`` (its "resolve by distinct numbers" rows, 2026-12-02): one at a time
# 8 µs for 1 number, 58 for 10, 180 for 32; the columnar path 185 µs for 1, 236 for 10, 276 for 32.
# They would cross past 40 numbers; 32 keeps a margin for machines where numpy's calls are cheaper.
SMALL_BATCH = 32


def international_form(raw: str) -> str:
    """Turn the spellings clients send (``372…``, ``00372…``, ``+372 5100-0001``) into ``+372…``.

    The API has no region hint, so a number without ``+`` or ``00`` is taken to
    start with its country calling code, as Messente does.
    """
    if raw[:1] == "+" and raw[1:].isdigit():  # already E.164-shaped: the common case, kept cheap
        return raw
    text = raw.strip()
    compact = text.translate(_SEPARATORS)
    if compact.startswith("+"):
        return compact
    if compact.isdigit():
        return "+" + (compact[2:] if compact.startswith("00") else compact)
    return text


# A plan row of one number, as ``NumberingPlan._fast`` fills its columns:
# (reason code, PhoneNumberType, region index, carrier index, E.164 digits or 0).
_PlanRow = tuple[int, int, int, int, int]
_NOT_A_NUMBER = REASON_CODE[InvalidReason.NOT_A_NUMBER]
_INVALID_COUNTRY_CODE = REASON_CODE[InvalidReason.INVALID_COUNTRY_CODE]
_TOO_SHORT = REASON_CODE[InvalidReason.TOO_SHORT]
_INVALID_FOR_REGION = REASON_CODE[InvalidReason.INVALID_FOR_REGION]


class _SmallTables:
    """The plan's arrays as Python lists, for :func:`_plan_row`; and the shipped blocks' segments.

    Why: reading one element of a numpy array from Python builds a numpy scalar
    (about 0.3 µs with its ``int``), and ``searchsorted`` of one key costs a
    microsecond or more before it searches; ``bisect`` on a list of ints takes
    half that, and a list element is read in a few nanoseconds. These tables
    hold some 36,000 values at most (about 8 MB as lists, built in some 10 ms on
    a worker's first small batch); the operator's own maps, which may hold
    millions, stay arrays.
    """

    def __init__(self, plan: NumberingPlan, blocks: ShippedBlocks) -> None:
        self.plan = plan
        self.cc3: list[int] = plan.cc3.tolist()
        self.cc_len: list[int] = plan.cc_len.tolist()
        self.cc_codes: list[int] = plan.cc_codes.tolist()
        self.cc_strip: list[int] = plan.cc_strip.tolist()
        self.reason_by_len: list[list[int]] = plan.reason_by_len.tolist()
        self.keep_by_len: list[list[int]] = plan.keep_by_len.tolist()
        self.main_starts: list[int] = plan.main_starts.tolist()
        self.main_region: list[int] = plan.main_region.tolist()
        self.main_type: list[int] = plan.main_type.tolist()
        self.gd_starts: list[int] = plan.gd_starts.tolist()
        self.gd_values: list[int] = plan.gd_values.tolist()
        self.strip_starts: list[int] = plan.strip_starts.tolist()
        self.strip_values: list[int] = plan.strip_values.tolist()
        self.strip_drop: list[int] = plan.strip_drop.tolist()
        self.strip_from: list[int] = plan.strip_from.tolist()
        self.strip_to: list[int] = plan.strip_to.tolist()
        self.strip_put: list[int] = plan.strip_put.tolist()
        self.strip_put_len: list[int] = plan.strip_put_len.tolist()
        self.carrier_starts: list[int] = plan.carrier_starts.tolist()
        self.carrier_entry: list[int] = plan.carrier_entry.tolist()
        self.entry_name: list[int] = plan.entry_name.tolist()
        self.entry_len: list[int] = plan.entry_len.tolist()
        self.block_starts: list[int] = blocks.ranges.starts.tolist()
        self.block_values: list[int] = blocks.ranges.values.tolist()
        self.non_geo = plan.regions.index(NON_GEOGRAPHIC) if NON_GEOGRAPHIC in plan.regions else -2
        # The shipped network of a (region, carrier, non-geographic code, block) key: what ``columns``
        # builds once per batch and key, kept across batches. Bounded by the plan's carriers and the blocks.
        self.shipped: dict[tuple[int, int, int, int], Network] = {}

    def block(self, padded: int) -> int:
        """``ShippedBlocks.lookup`` of one padded number."""
        idx = bisect_right(self.block_starts, padded) - 1
        return self.block_values[idx] if idx >= 0 else NO_NETWORK


def _plan_row(tables: _SmallTables, value: int, length: int) -> _PlanRow | None:
    """``NumberingPlan._fast`` for one ``+``-and-digits number (``length`` digits); None where it goes slow.

    Step for step the arithmetic of ``_fast`` on one row, in Python integers
    (every intermediate fits int64 there as well), so the two cannot disagree
    by rounding; a segment lookup (``plan._lookup``) is ``bisect_right`` on the
    same starts. tests/numbering/test_small_batch.py compares them number by number.
    """
    if length < 3:  # "+" and fewer than 3 digits is not viable
        return _NOT_A_NUMBER, UNKNOWN, NO_REGION, -1, 0
    cci = tables.cc3[value // 10 ** (length - 3)]
    if cci < 0:
        return _INVALID_COUNTRY_CODE, UNKNOWN, NO_REGION, -1, 0
    nsn_len = length - tables.cc_len[cci]
    if nsn_len < 2:
        return _TOO_SHORT, UNKNOWN, NO_REGION, -1, 0
    key = length * KEY_BASE + value
    if tables.cc_strip[cci] > 0:  # national prefix stripping, for calling codes with a national prefix
        rule = tables.strip_values[bisect_right(tables.strip_starts, key) - 1]
        if rule == SLOW:
            return None
        if rule > 0:  # the rewrite (compiler.Rewrite): put + nsn[keep_from:keep_to] + nsn[drop:]
            cclen = tables.cc_len[cci]
            nsn = value % 10**nsn_len
            tail_len = nsn_len - tables.strip_drop[rule]
            keep_from, keep_to = tables.strip_from[rule], tables.strip_to[rule]
            if keep_to > nsn_len or tail_len < 0:  # a rule longer than the number (the compiler makes none)
                return None
            kept = (nsn // 10 ** (nsn_len - keep_to)) % 10 ** (keep_to - keep_from)
            rest_len = tables.strip_put_len[rule] + (keep_to - keep_from) + tail_len
            rest = (tables.strip_put[rule] * 10 ** (keep_to - keep_from) + kept) * 10**tail_len + nsn % 10**tail_len
            new_len = cclen + rest_len
            if new_len > MAX_KEYED:  # a rewrite past the keys' reach: phonenumbers decides
                return None
            new_value = tables.cc_codes[cci] * 10**rest_len + rest % 10**rest_len
            new_key = new_len * KEY_BASE + new_value
            gd_whole = tables.gd_values[bisect_right(tables.gd_starts, key) - 1] > 0
            gd_rest = tables.gd_values[bisect_right(tables.gd_starts, new_key) - 1] > 0
            long_enough = tables.keep_by_len[cci][min(max(rest_len, 0), MAX_NSN)] > 0
            if not (gd_whole and not gd_rest) and long_enough:
                value, length, nsn_len, key = new_value, new_len, rest_len, new_key
    reason = tables.reason_by_len[cci][min(nsn_len, MAX_NSN)]
    seg = bisect_right(tables.main_starts, key) - 1
    where, kind = tables.main_region[seg], tables.main_type[seg]
    if where == SLOW:
        return None
    if not (reason == 0 and kind != UNKNOWN and where >= 0):
        return reason or _INVALID_FOR_REGION, UNKNOWN, NO_REGION, -1, value
    carrier = 0
    if kind in CARRIER_TYPES:  # carrier.name_for_number: longest prefix of the padded digits
        if length > MAX_DIGITS:  # beyond the carrier table's padding: phonenumbers decides
            return None
        padded = value * 10 ** max(MAX_DIGITS - length, 0)
        entry = tables.carrier_entry[bisect_right(tables.carrier_starts, padded) - 1]
        if entry >= 0:
            if tables.entry_len[entry] > length:  # a prefix longer than the number: phonenumbers decides
                return None
            carrier = tables.entry_name[entry]
    return 0, kind, where, carrier, value


@cache
def shared_plan(cache_dir: Path | None = None) -> NumberingPlan:
    """One plan per process and cache folder: its arrays are read-only."""
    return NumberingPlan.load(cache_dir)


@dataclass(frozen=True, slots=True)
class Columns:
    """A resolved batch as arrays, one row per input (in input order).

    ``original`` and ``ported`` index ``networks`` (-1: none). ``porting_known``
    says, per row, whether imported porting data covers the number's country
    (then ``ported`` -1 means "not ported", else "unknown"). ``batch`` holds the
    engine's columns: validity, reason, type, region, carrier, E.164 digits.
    """

    inputs: Sequence[str]
    batch: BatchResult
    original: npt.NDArray[np.int32]
    ported: npt.NDArray[np.int32]
    networks: tuple[Network, ...]
    porting_known: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.inputs)

    def resolution(self, i: int) -> Resolution:
        batch = self.batch
        reason = REASONS[int(batch.reason[i])]
        e164 = batch.e164(i)
        if reason is not None:
            return Resolution(input=self.inputs[i], e164=e164, reason=reason)
        original = self.networks[self.original[i]] if self.original[i] >= 0 else None
        ported = self.networks[self.ported[i]] if self.ported[i] >= 0 else None
        return Resolution(
            input=self.inputs[i],
            e164=e164,
            number_type=TYPE_NAMES.get(int(batch.number_type[i]), "unknown"),
            country=original.country if original is not None else None,
            original_network=original,
            ported_network=ported,
            porting_known=bool(self.porting_known[i]),
        )

    def resolutions(self) -> list[Resolution]:
        """Every row's :meth:`resolution`, in order, the columns read as lists once.

        Why: :meth:`resolution` reads seven numpy scalars per row (some 2 µs);
        a burst of single-number requests coalesces into one batch of a
        thousand, whose resolutions the event loop builds before it answers any.
        """
        batch = self.batch
        reasons = batch.reason.tolist()
        types = batch.number_type.tolist()
        digits = batch.digits.tolist()
        originals = self.original.tolist()
        ported_rows = self.ported.tolist()
        known = self.porting_known.tolist()
        networks = self.networks
        long_e164 = batch.long_e164
        out: list[Resolution] = []
        for i, raw in enumerate(self.inputs):
            value = digits[i]
            e164 = long_e164[i] if i in long_e164 else (f"+{value}" if value else None)
            reason = REASONS[reasons[i]]
            if reason is not None:
                out.append(Resolution(input=raw, e164=e164, reason=reason))
                continue
            original = networks[originals[i]] if originals[i] >= 0 else None
            out.append(
                Resolution(
                    input=raw,
                    e164=e164,
                    number_type=TYPE_NAMES.get(types[i], "unknown"),
                    country=original.country if original is not None else None,
                    original_network=original,
                    ported_network=networks[ported_rows[i]] if ported_rows[i] >= 0 else None,
                    porting_known=known[i],
                )
            )
        return out


class Resolver:
    """Resolves numbers against libphonenumber, the shipped registry and operator data."""

    def __init__(
        self,
        networks: NetworkRegistry | None = None,
        operator: OperatorData | None = None,
        plan: NumberingPlan | None = None,
        blocks: ShippedBlocks | None = None,
    ) -> None:
        self.networks = networks or NetworkRegistry.shipped()
        self.operator = operator or OperatorData()
        self.plan = plan or shared_plan()
        self.blocks = blocks if blocks is not None else ShippedBlocks.shipped()
        self._small: _SmallTables | None = None  # built on the first small batch

    def use(self, operator: OperatorData) -> None:
        """Serve from new operator data; batches already running finish on the old."""
        self.operator = operator

    def resolve(self, numbers: Sequence[str]) -> list[Resolution]:
        unique = list(dict.fromkeys(numbers))
        small = self.resolve_small(unique) if len(unique) <= SMALL_BATCH else None
        resolved = small if small is not None else self.resolve_columns(unique).resolutions()
        if len(unique) == len(numbers):  # no number twice: the answers are in the input's order already
            return resolved
        by_input = dict(zip(unique, resolved, strict=True))
        return [by_input[raw] for raw in numbers]

    def resolve_small(self, numbers: Sequence[str]) -> list[Resolution] | None:
        """:meth:`resolve` of a few numbers, one at a time, from the same tables; None: leave it to the arrays.

        Why: the columnar path has a fixed cost of about a hundred numpy calls,
        each a few µs before it touches a row, and a lone request's batch is ten
        numbers or one. Here each number is a handful of binary searches on the
        same arrays, with the same arithmetic as ``NumberingPlan._fast`` and
        :meth:`columns` (the figures of both: ``SMALL_BATCH``). Only
        input the tables decide takes it: anything the plan would hand to
        phonenumbers (not ``+`` and 1–17 digits, a slow calling code or prefix)
        returns None and the caller resolves the batch by the columnar path.
        tests/numbering/test_small_batch.py holds both paths to the same answers.
        """
        tables = self._small
        if tables is None or tables.plan is not self.plan:
            tables = self._small = _SmallTables(self.plan, self.blocks)
        rows: list[tuple[str, _PlanRow]] = []
        for raw in numbers:
            form = international_form(raw)
            digits = form[1:]
            if form[:1] != "+" or not 1 <= len(digits) <= MAX_KEYED or not (digits.isascii() and digits.isdigit()):
                return None
            row = _plan_row(tables, int(digits), len(digits))
            if row is None:
                return None
            rows.append((raw, row))
        self.plan.stats.numbers += len(rows)
        operator = self.operator  # one snapshot for the whole batch
        return [self._small_resolution(tables, raw, row, operator) for raw, row in rows]

    def _small_resolution(self, tables: _SmallTables, raw: str, row: _PlanRow, operator: OperatorData) -> Resolution:
        """One number's :meth:`Columns.resolution`, from its plan row: :meth:`columns`, one row at a time."""
        reason_code, kind, region_index, carrier_index, digits = row
        e164 = f"+{digits}" if digits else None
        reason = REASONS[reason_code]
        if reason is not None:
            return Resolution(input=raw, e164=e164, reason=reason)
        length = len(str(digits))  # searchsorted(POW10, digits, "right"): digits > 0 here
        padded = digits * 10 ** max(WIDTH - length, 0)
        hit = NO_NETWORK
        if kind in CARRIER_TYPES:
            hit = tables.block(padded)
        code = digits // 10 ** (length - 3) if region_index == tables.non_geo else 0
        key = (region_index, carrier_index, code, hit)
        original = tables.shipped.get(key)
        if original is None:
            original = tables.shipped[key] = self._shipped_network(region_index, carrier_index, code, digits, hit)
        ported: Network | None = None
        if operator.ranges is not None:
            range_hit = operator.ranges.lookup_one(padded)
            if range_hit != NO_NETWORK:
                original = self._data_network(operator.ranges.networks[range_hit], original.country)
        porting_known = False
        if operator.ported is not None:
            ported_hit = operator.ported.lookup_one(digits)
            if ported_hit != NO_NETWORK:
                candidate = self._data_network(operator.ported.networks[ported_hit], original.country)
                # A number "ported" to its own range holder has come home: it is not ported.
                if candidate.mccmnc != original.mccmnc:
                    ported = candidate
            porting_known = operator.ported.covers(original.country.calling_code)
        return Resolution(
            input=raw,
            e164=e164,
            number_type=TYPE_NAMES.get(kind, "unknown"),
            country=original.country,
            original_network=original,
            ported_network=ported,
            porting_known=porting_known,
        )

    def resolve_columns(self, numbers: Sequence[str], region: str | None = None) -> Columns:
        """Resolve a batch into arrays.

        Without ``region`` every number is international (the API's rule, see
        ``international_form``); with it, numbers without ``+`` are read as that
        region's national (or its international-prefix) format, as in a contact list.
        """
        if region is None:
            batch = self.plan.resolve_e164([international_form(raw) for raw in numbers])
        else:
            batch = self.plan.resolve_e164([raw.strip() for raw in numbers], [region] * len(numbers))
        return self.columns(numbers, batch)

    def columns(self, numbers: Sequence[str], batch: BatchResult) -> Columns:
        """The networks of a batch the plan has resolved (``numbers`` are its inputs, as ``Columns.inputs``).

        Apart from :meth:`resolve_columns` for the bulk file's reader, which hands
        the plan its ``+``-and-digits rows already scanned (``NumberingPlan.resolve_scanned``).
        """
        operator = self.operator  # one snapshot for the whole batch
        count = len(numbers)
        original = np.full(count, NO_NETWORK, dtype=np.int32)
        ported = np.full(count, NO_NETWORK, dtype=np.int32)
        porting_known = np.zeros(count, dtype=np.bool_)
        interner = Interner[Network]()
        rows = np.flatnonzero(batch.valid)
        if len(rows):
            self._shipped_networks(batch, rows, original, interner)
            if operator.ranges is not None or operator.ported is not None:
                self._operator_networks(operator, batch, rows, original, ported, interner)
            if operator.ported is not None:
                porting_known[rows] = self._covered(operator.ported, interner.items)[original[rows]]
        return Columns(numbers, batch, original, ported, tuple(interner.items), porting_known)

    @staticmethod
    def _covered(ported: PortedMap, networks: Sequence[Network]) -> npt.NDArray[np.bool_]:
        """Per network of the batch: does the ported map cover its country (calling code)?"""
        return np.array([ported.covers(n.country.calling_code) for n in networks], dtype=np.bool_)

    def _shipped_networks(
        self,
        batch: BatchResult,
        rows: npt.NDArray[np.intp],
        original: npt.NDArray[np.int32],
        interner: Interner[Network],
    ) -> None:
        """The range holder of every valid row, built once per distinct (region, calling code, carrier)."""
        region = batch.region[rows].astype(np.int64)
        carrier = batch.carrier[rows].astype(np.int64)
        code = np.zeros(len(rows), dtype=np.int64)
        # A region and carrier pair: keys in a span ``group`` tells apart without a sort.
        key = region * (len(batch.carriers) + 1) + carrier + 1
        if NON_GEOGRAPHIC in batch.regions:  # +800, +882, …: the country depends on the number's own code
            non_geo = region == batch.regions.index(NON_GEOGRAPHIC)
            if non_geo.any():
                digits = batch.digits[rows][non_geo]
                code[non_geo] = digits // POW10[np.searchsorted(POW10, digits, side="right") - 3]
                key = key * 1000 + code
        inverse, first = group(key)
        index = np.empty(len(first), dtype=np.int32)
        calling = self._calling_codes(batch.digits[rows[first]])
        for u, j in enumerate(first.tolist()):
            carrier_name = batch.carriers[int(carrier[j])] if carrier[j] >= 0 else ""
            holder = self._range_holder(batch.regions[int(region[j])], carrier_name, int(code[j]) or int(calling[u]))
            index[u] = interner(holder)
        original[rows] = index[inverse]
        if len(self.blocks):
            self._block_networks(batch, rows, original, interner)

    def _calling_codes(self, digits: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
        """The calling code of each valid E.164 number, from its first digits and the plan's table.

        It is its region's (``phonenumbers.country_code_for_region``, whose region
        the number's code chose), without loading that region's metadata: asked
        for every region a file holds, that was a quarter of a second of a bulk run.
        """
        lengths = np.searchsorted(POW10, digits, side="right")
        codes: npt.NDArray[np.int64] = self.plan.cc_codes[self.plan.cc3[digits // POW10[np.maximum(lengths - 3, 0)]]]
        return codes

    def _block_networks(
        self,
        batch: BatchResult,
        rows: npt.NDArray[np.intp],
        original: npt.NDArray[np.int32],
        interner: Interner[Network],
    ) -> None:
        """A shipped block's holder replaces the prefix's carrier, for the numbers carrier data would name."""
        mobile = rows[carrier_typed(batch.number_type[rows])]
        if not len(mobile):
            return
        digits = batch.digits[mobile]
        padded = digits * POW10[np.maximum(WIDTH - np.searchsorted(POW10, digits, side="right"), 0)]
        hits = self.blocks.lookup(padded)
        found = hits != NO_NETWORK
        if not found.any():
            return
        mobile, hits = mobile[found], hits[found].astype(np.int64)
        # One Network per distinct (prefix network, holder): the country comes from the first.
        key = original[mobile].astype(np.int64) * len(self.blocks.holders) + hits
        inverse, first = group(key)
        index = np.empty(len(first), dtype=np.int32)
        for u, j in enumerate(first.tolist()):
            before = interner.items[int(original[mobile[j]])]
            index[u] = interner(self._block_network(before, int(hits[j])))
        original[mobile] = index[inverse]

    def _shipped_network(self, region_index: int, carrier_index: int, code: int, digits: int, hit: int) -> Network:
        """:meth:`_shipped_networks` and :meth:`_block_networks` for one number (``code``: its non-geographic code)."""
        plan = self.plan
        name = plan.regions[region_index]
        if not code:
            length = len(str(digits))
            code = int(plan.cc_codes[plan.cc3[digits // 10 ** max(length - 3, 0)]])
        network = self._range_holder(name, plan.carriers[carrier_index] if carrier_index >= 0 else "", code)
        return self._block_network(network, hit) if hit != NO_NETWORK else network

    def _range_holder(self, region: str, carrier: str, calling_code: int) -> Network:
        """The network a region's carrier name stands for, in the country of ``calling_code``: both paths' rule."""
        mccmnc, name = self.networks.network_for_carrier(region, carrier)
        return Network(mccmnc=mccmnc, name=name, country=country_for(region, calling_code))

    def _block_network(self, before: Network, hit: int) -> Network:
        """The network of shipped block ``hit`` for a number whose prefix named ``before``."""
        holder = self.blocks.holders[hit]
        record = self.networks.records.get(holder.mccmnc) if holder.mccmnc else None
        if record is not None:  # the registry's name for the MCC/MNC
            name: str | None = record.name
        elif holder.name:  # the source's name for a holder without an MCC/MNC
            name = holder.name
        elif before.name and not before.mccmnc:  # libphonenumber names a holder without one too: its name
            name = before.name
        else:  # never the prefix's network (it has an MNC the block's holder does not): the source's identifier
            name = holder.holder
        return Network(mccmnc=holder.mccmnc, name=name, country=before.country)

    def _data_network(self, network: DataNetwork, country: Country) -> Network:
        record = self.networks.records.get(network.mccmnc)
        return Network(mccmnc=network.mccmnc, name=network.name or (record.name if record else None), country=country)

    def _operator_networks(
        self,
        operator: OperatorData,
        batch: BatchResult,
        rows: npt.NDArray[np.intp],
        original: npt.NDArray[np.int32],
        ported: npt.NDArray[np.int32],
        interner: Interner[Network],
    ) -> None:
        """Imported ranges override shipped ones; a ported number overrides its range."""
        digits = batch.digits[rows]
        lengths = np.searchsorted(POW10, digits, side="right")
        padded = digits * POW10[np.maximum(WIDTH - lengths, 0)]
        no_hits = np.full(len(rows), NO_NETWORK, dtype=np.int32)
        range_hits = operator.ranges.lookup(padded) if operator.ranges is not None else no_hits
        ported_hits = operator.ported.lookup(digits) if operator.ported is not None else no_hits
        hit_rows = np.flatnonzero((range_hits != NO_NETWORK) | (ported_hits != NO_NETWORK))
        for j in hit_rows.tolist():
            i = int(rows[j])
            country = interner.items[original[i]].country
            range_hit, ported_hit = int(range_hits[j]), int(ported_hits[j])
            if range_hit != NO_NETWORK:
                assert operator.ranges is not None
                original[i] = interner(self._data_network(operator.ranges.networks[range_hit], country))
            if ported_hit != NO_NETWORK:
                assert operator.ported is not None
                candidate = self._data_network(operator.ported.networks[ported_hit], country)
                # A number "ported" to its own range holder has come home: it is not ported.
                if original[i] < 0 or candidate.mccmnc != interner.items[original[i]].mccmnc:
                    ported[i] = interner(candidate)
