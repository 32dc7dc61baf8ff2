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
from numlookup.numbering.layout import REASONS, TYPE_NAMES, carrier_typed
from numlookup.numbering.models import Country, Network, Resolution
from numlookup.numbering.networks import NetworkRegistry
from numlookup.numbering.operator_data import DataNetwork, OperatorData, PortedMap
from numlookup.numbering.plan import BatchResult, NumberingPlan

_SEPARATORS = str.maketrans("", "", " \t-.()/\u00a0")


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

    def use(self, operator: OperatorData) -> None:
        """Serve from new operator data; batches already running finish on the old."""
        self.operator = operator

    def resolve(self, numbers: Sequence[str]) -> list[Resolution]:
        unique = list(dict.fromkeys(numbers))
        columns = self.resolve_columns(unique)
        by_input = {raw: columns.resolution(i) for i, raw in enumerate(unique)}
        return [by_input[raw] for raw in numbers]

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
        if NON_GEOGRAPHIC in batch.regions:  # +800, +882, …: the country depends on the number's own code
            non_geo = region == batch.regions.index(NON_GEOGRAPHIC)
            digits = batch.digits[rows][non_geo]
            code[non_geo] = digits // POW10[np.searchsorted(POW10, digits, side="right") - 3]
        key = (region * (len(batch.carriers) + 1) + carrier + 1) * 1000 + code
        inverse, first = group(key)
        index = np.empty(len(first), dtype=np.int32)
        calling = self._calling_codes(batch.digits[rows[first]])
        for u, j in enumerate(first.tolist()):
            name = batch.regions[int(region[j])]
            country = country_for(name, int(code[j]) or int(calling[u]))
            carrier_name = batch.carriers[int(carrier[j])] if carrier[j] >= 0 else ""
            mccmnc, network_name = self.networks.network_for_carrier(name, carrier_name)
            index[u] = interner(Network(mccmnc=mccmnc, name=network_name, country=country))
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
            holder = self.blocks.holders[int(hits[j])]
            record = self.networks.records.get(holder.mccmnc) if holder.mccmnc else None
            if record is not None:  # the registry's name for the MCC/MNC
                name: str | None = record.name
            elif holder.name:  # the source's name for a holder without an MCC/MNC
                name = holder.name
            elif before.name and not before.mccmnc:  # libphonenumber names a holder without one too: its name
                name = before.name
            else:  # never the prefix's network (it has an MNC the block's holder does not): the source's identifier
                name = holder.holder
            index[u] = interner(Network(mccmnc=holder.mccmnc, name=name, country=before.country))
        original[mobile] = index[inverse]

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
