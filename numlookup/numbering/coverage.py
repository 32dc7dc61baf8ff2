"""How much of the numbering space resolves to an MCC/MNC: two measures.

**Named prefixes** (``coverage``): libphonenumber names the carrier of a mobile prefix;
``NetworkRegistry`` turns the name into an MCC/MNC, and the shipped blocks
(``ShippedBlocks``: India's series, France's ARCEP blocks, reviewed ranges) give the
numbers they cover their holder's. ``coverage`` measures, per region and in total, the
share of carrier prefixes that get an ``mccmnc``, weighting each prefix by the national
numbers it covers, so that a name covering ``+49 151`` counts for more than a name
covering one M2M block. It counts only what libphonenumber names a carrier for: a country
can read 81% while its largest ranges have no carrier name at all.

**Mobile number space** (``mobile_space``): every number of the region's typical mobile
length that libphonenumber's mobile patterns accept (type mobile, or fixed-line-or-mobile
where a country does not tell them apart), counted exactly from the compiled numbering
plan, and the share of them that resolves to an MCC/MNC the way the resolver answers
(carrier prefix → name → MCC/MNC, a block beating the prefix). The typical length is the
one the first measure uses (below): counting every accepted length would let Austria's
13-digit and Indonesia's 12-digit mobile numbering outweigh the rest of the world (all
lengths together, Austria alone would be three quarters of the total). It also lists each
region's largest unresolved blocks, and, per block source, how often the
libphonenumber-based answer agrees with the block holder's MCC/MNC.

Number counts of the first measure are approximate. A prefix ``p`` of a region whose
typical mobile national significant number is ``L`` digits long covers ``10 ** (L - len(p))``
numbers, minus what longer prefixes inside it cover. ``L`` is the length of
libphonenumber's example mobile number for the region (its longest mobile
``possible_length`` where there is no example): taking the longest possible length
would let the long M2M numbering of a few regions (Austria's mobile numbers run to 13
digits) outweigh the rest of the world. A prefix shared by several regions of one
calling code (+44 GB/GG/JE/IM, +7 RU/KZ, ...) is attributed by validating a few sample
numbers. A block covers the share of a prefix's numbers that it covers of the prefix's
padded interval. Treat the counts as weights, not as a census of numbers in use.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import numpy.typing as npt
import phonenumbers
from phonenumbers import PhoneNumberType
from phonenumbers.carrierdata import CARRIER_DATA

from numlookup.numbering.blocks import ShippedBlocks
from numlookup.numbering.countries import NON_GEOGRAPHIC
from numlookup.numbering.intervals import WIDTH, pad_high, pad_low, paint
from numlookup.numbering.layout import KEY_BASE, MAX_KEYED
from numlookup.numbering.networks import NetworkRegistry
from numlookup.numbering.plan import NumberingPlan

LANG = "en"

# The 40 regions with the most mobile subscriptions among those libphonenumber has
# mobile carrier data for, largest first. Ranking from approximate 2023 mobile-cellular
# subscription counts published by the ITU (World Telecommunication/ICT Indicators) and
# GSMA Intelligence, rounded; close neighbours may swap places. The United States,
# Mexico and Canada are left out: libphonenumber has no carrier names for their mobile
# ranges (the US has two wholesale VoIP names only).
TOP_40: tuple[str, ...] = (
    "CN",  # ~1,750 M
    "IN",  # ~1,150 M
    "ID",  # ~350 M
    "RU",  # ~250 M
    "BR",  # ~250 M
    "NG",  # ~220 M
    "JP",  # ~210 M
    "PK",  # ~190 M
    "BD",  # ~190 M
    "IR",  # ~150 M
    "VN",  # ~130 M
    "TH",  # ~125 M
    "PH",  # ~120 M
    "ZA",  # ~110 M
    "DE",  # ~107 M
    "EG",  # ~105 M
    "TR",  # ~90 M
    "KR",  # ~80 M
    "CO",  # ~80 M
    "FR",  # ~80 M
    "GB",  # ~80 M
    "IT",  # ~78 M
    "ET",  # ~70 M
    "TZ",  # ~70 M
    "KE",  # ~65 M
    "AR",  # ~62 M
    "MM",  # ~60 M
    "ES",  # ~58 M
    "MA",  # ~55 M
    "PL",  # ~54 M
    "UA",  # ~50 M
    "DZ",  # ~50 M
    "CD",  # ~50 M
    "SA",  # ~48 M
    "MY",  # ~45 M
    "IQ",  # ~45 M
    "CI",  # ~45 M
    "PE",  # ~41 M
    "GH",  # ~40 M
    "UG",  # ~38 M
)


@dataclass(frozen=True, slots=True)
class CarrierPrefix:
    """One prefix of libphonenumber's carrier data with its English carrier name."""

    prefix: str  # with the country calling code, as CARRIER_DATA keys it
    region: str
    name: str
    numbers: int  # approximate national numbers covered, net of longer prefixes


@dataclass(frozen=True, slots=True)
class RegionCoverage:
    region: str
    prefixes: int
    mapped_prefixes: int
    numbers: int
    mapped_numbers: int
    unmapped: tuple[tuple[str, int], ...]  # (carrier name, numbers), most numbers first
    by_source: tuple[tuple[str, int], ...] = ()  # (what decided the mccmnc, numbers), most numbers first

    @property
    def share(self) -> float:
        """Share of the region's carrier numbers whose prefix resolves to an mccmnc (1.0 if none)."""
        return self.mapped_numbers / self.numbers if self.numbers else 1.0


@dataclass(frozen=True, slots=True)
class CoverageReport:
    regions: tuple[RegionCoverage, ...]  # sorted by region code

    @property
    def prefixes(self) -> int:
        return sum(r.prefixes for r in self.regions)

    @property
    def mapped_prefixes(self) -> int:
        return sum(r.mapped_prefixes for r in self.regions)

    @property
    def numbers(self) -> int:
        return sum(r.numbers for r in self.regions)

    @property
    def mapped_numbers(self) -> int:
        return sum(r.mapped_numbers for r in self.regions)

    @property
    def share(self) -> float:
        return self.mapped_numbers / self.numbers if self.numbers else 1.0

    @property
    def by_source(self) -> tuple[tuple[str, int], ...]:
        return _sum_sources(r.by_source for r in self.regions)

    def region(self, code: str) -> RegionCoverage | None:
        return next((r for r in self.regions if r.region == code.upper()), None)

    def select(self, codes: Iterable[str]) -> CoverageReport:
        wanted = {c.upper() for c in codes}
        return CoverageReport(tuple(r for r in self.regions if r.region in wanted))


def _sum_sources(parts: Iterable[Iterable[tuple[str, int]]]) -> tuple[tuple[str, int], ...]:
    total: Counter[str] = Counter()
    for part in parts:
        for source, numbers in part:
            total[source] += numbers
    return tuple(sorted(total.items(), key=lambda kv: (-kv[1], kv[0])))


def name_source(networks: NetworkRegistry, region: str, carrier_name: str, mccmnc: str) -> str:
    """What decided a carrier name's MCC/MNC: ``carrier name, override|rule, <registry source> code``."""
    record = networks.records.get(mccmnc)
    kind = networks.decided_by(region, carrier_name) or "rule"
    return f"carrier name, {kind}, {record.source if record and record.source else 'registry'} code"


def block_source(source: str) -> str:
    return f"block, {source}"


def _split_country_code(prefix: str) -> tuple[int, str] | None:
    """Split a carrier-data prefix into (country calling code, national part)."""
    for n in (1, 2, 3):
        cc = int(prefix[:n])
        if cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return cc, prefix[n:]
    return None


def _max_mobile_length(region: str) -> int | None:
    md = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if md is None or md.mobile is None or not md.mobile.possible_length:
        return None
    lengths = [n for n in md.mobile.possible_length if n > 0]
    return max(lengths) if lengths else None


@cache
def typical_mobile_length(region: str) -> int | None:
    """Length of the region's example mobile number, else its longest possible mobile length."""
    md = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if md is not None and md.mobile is not None and md.mobile.example_number:
        return len(md.mobile.example_number)
    return _max_mobile_length(region)


def region_for_prefix(cc: int, national: str) -> str:
    """Region of a national prefix; for shared calling codes, vote by validating samples."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE[cc]
    main = phonenumbers.region_code_for_country_code(cc)
    if len(regions) == 1:
        return main
    votes: dict[str, int] = defaultdict(int)
    for region in regions:
        length = _max_mobile_length(region)
        if length is None or len(national) > length:
            continue
        for fill in "0123456789":
            digits = national + fill * (length - len(national))
            try:
                number = phonenumbers.parse(f"+{cc}{digits}")
            except phonenumbers.NumberParseException:
                continue
            found = phonenumbers.region_code_for_number(number)
            if found in regions:
                votes[found] += 1
    if not votes:
        return main
    return max(votes, key=lambda r: (votes[r], r == main))


@cache
def carrier_prefixes() -> tuple[CarrierPrefix, ...]:
    """Every prefix of libphonenumber's carrier data that has an English name, with its weight."""
    entries: list[tuple[str, str, str, str]] = []  # (prefix, region, national, name)
    for prefix, names in CARRIER_DATA.items():
        name = names.get(LANG)
        split = _split_country_code(prefix)
        if not name or split is None:
            continue
        cc, national = split
        entries.append((prefix, region_for_prefix(cc, national), national, name))

    raw: dict[str, int] = {}
    for prefix, region, national, _ in entries:
        length = typical_mobile_length(region) or len(national)
        raw[prefix] = 10 ** max(length - len(national), 0)
    # Numbers under a more specific prefix belong to that prefix, not to its parent.
    net = dict(raw)
    for prefix in raw:
        for cut in range(len(prefix) - 1, 0, -1):
            parent = prefix[:cut]
            if parent in raw:
                net[parent] -= raw[prefix]
                break
    return tuple(
        CarrierPrefix(prefix, region, name, max(net[prefix], 0)) for prefix, region, _, name in sorted(entries)
    )


def carrier_numbers() -> dict[str, dict[str, int]]:
    """region -> English carrier name -> approximate count of national numbers covered."""
    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for p in carrier_prefixes():
        out[p.region][p.name] += p.numbers
    return {region: dict(names) for region, names in out.items()}


def _block_split(
    prefixes: tuple[CarrierPrefix, ...], blocks: ShippedBlocks
) -> tuple[dict[int, dict[int, int]], dict[int, int]]:
    """Per carrier prefix (index): padded numbers each block holder covers of it, and its padded total.

    Both are net of longer prefixes: the prefixes are painted so that the longest wins, as
    the lookups decide. Only prefixes that a block touches are listed.
    """
    if not prefixes or not len(blocks):
        return {}, {}
    low = np.array([pad_low(p.prefix) for p in prefixes], dtype=np.int64)
    high = np.array([pad_high(p.prefix) for p in prefixes], dtype=np.int64)
    rank = np.array([len(p.prefix) for p in prefixes], dtype=np.int64)
    starts, entries = paint(low, high, np.arange(len(prefixes), dtype=np.int64), np.argsort(rank, kind="stable"), -1)
    bstarts, bvalues = blocks.ranges.starts, blocks.ranges.values
    bounds = np.unique(np.concatenate([starts, bstarts, np.array([10**WIDTH], dtype=np.int64)]))
    lengths = np.diff(bounds)
    entry = entries[np.searchsorted(starts, bounds[:-1], side="right") - 1]
    at = np.searchsorted(bstarts, bounds[:-1], side="right") - 1
    holder = np.where(at >= 0, bvalues[np.maximum(at, 0)], -1)
    touched = np.unique(entry[(entry >= 0) & (holder >= 0)])
    wanted = np.isin(entry, touched)
    totals: dict[int, int] = defaultdict(int)
    covered: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for e, h, n in zip(entry[wanted].tolist(), holder[wanted].tolist(), lengths[wanted].tolist(), strict=True):
        totals[e] += n
        if h >= 0:
            covered[e][h] += n
    return {e: dict(hs) for e, hs in covered.items()}, dict(totals)


def coverage(networks: NetworkRegistry, blocks: ShippedBlocks | None = None) -> CoverageReport:
    """Per region and in total, the weighted share of carrier prefixes that resolve to an mccmnc."""
    blocks = ShippedBlocks.shipped() if blocks is None else blocks
    prefixes_all = carrier_prefixes()
    covered, totals = _block_split(prefixes_all, blocks)
    prefixes: dict[str, int] = defaultdict(int)
    mapped_prefixes: dict[str, int] = defaultdict(int)
    numbers: dict[str, int] = defaultdict(int)
    mapped_numbers: dict[str, int] = defaultdict(int)
    unmapped: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    sources: dict[str, Counter[str]] = defaultdict(Counter)
    for i, p in enumerate(prefixes_all):
        mccmnc, _ = networks.network_for_carrier(p.region, p.name)
        prefixes[p.region] += 1
        numbers[p.region] += p.numbers
        rest = p.numbers  # numbers no block covers
        mapped = 0
        for h, padded in covered.get(i, {}).items():
            share = (2 * p.numbers * padded + totals[i]) // (2 * totals[i])  # rounded
            rest -= share
            holder = blocks.holders[h]
            if holder.mccmnc:
                mapped += share
                sources[p.region][block_source(holder.source)] += share
        rest = max(rest, 0)
        if mccmnc and rest:
            mapped += rest
            sources[p.region][name_source(networks, p.region, p.name, mccmnc)] += rest
        if mapped or (not p.numbers and mccmnc):
            mapped_prefixes[p.region] += 1
        mapped_numbers[p.region] += mapped
        if p.numbers - mapped > 0:
            unmapped[p.region][p.name] += p.numbers - mapped
    return CoverageReport(
        tuple(
            RegionCoverage(
                region=region,
                prefixes=prefixes[region],
                mapped_prefixes=mapped_prefixes[region],
                numbers=numbers[region],
                mapped_numbers=mapped_numbers[region],
                unmapped=tuple(sorted(unmapped[region].items(), key=lambda kv: (-kv[1], kv[0]))),
                by_source=tuple(sorted(sources[region].items(), key=lambda kv: (-kv[1], kv[0]))),
            )
            for region in sorted(prefixes)
        )
    )


# ---------------------------------------------------------------- the mobile number space

MOBILE_SPACE_TYPES = (int(PhoneNumberType.MOBILE), int(PhoneNumberType.FIXED_LINE_OR_MOBILE))
LARGEST = 5  # unresolved blocks listed per region


@dataclass(frozen=True, slots=True)
class UnresolvedBlock:
    """A run of consecutive mobile numbers of one length that resolve to no MCC/MNC."""

    low: str  # E.164 digits
    high: str
    numbers: int
    carrier: str  # libphonenumber's carrier name for the run, "" where it names none

    @property
    def label(self) -> str:
        """``+7916`` for a whole prefix, else ``+79160000000–+79161234567``."""
        cut = len(self.low)
        while cut > 1 and self.low[cut - 1] == "0" and self.high[cut - 1] == "9":
            cut -= 1
        if self.low[:cut] == self.high[:cut]:
            return f"+{self.low[:cut]} ({len(self.low)} digits)"
        return f"+{self.low}–+{self.high}"


@dataclass(frozen=True, slots=True)
class Agreement:
    """Numbers of one block source's blocks, by how the libphonenumber-based answer compares."""

    agree: int = 0  # both name an MCC/MNC, the same
    disagree: int = 0  # both name one, different
    prefix_only: int = 0  # only the libphonenumber-based answer has an MCC/MNC
    block_only: int = 0  # only the block holder has one
    neither: int = 0

    @property
    def numbers(self) -> int:
        return self.agree + self.disagree + self.prefix_only + self.block_only + self.neither

    @property
    def share(self) -> float:
        """Of the numbers whose block holder has an MCC/MNC, the share where libphonenumber's answer is the same."""
        base = self.agree + self.disagree + self.block_only
        return self.agree / base if base else 1.0

    def __add__(self, other: Agreement) -> Agreement:
        return Agreement(
            self.agree + other.agree,
            self.disagree + other.disagree,
            self.prefix_only + other.prefix_only,
            self.block_only + other.block_only,
            self.neither + other.neither,
        )


@dataclass(frozen=True, slots=True)
class RegionSpace:
    region: str
    numbers: int  # numbers of the typical mobile length libphonenumber's mobile patterns accept
    resolved: int  # of them, numbers that resolve to an MCC/MNC
    by_source: tuple[tuple[str, int], ...]
    unresolved: tuple[UnresolvedBlock, ...]  # the largest, most numbers first
    agreement: tuple[tuple[str, Agreement], ...] = ()  # per block source with blocks here

    @property
    def share(self) -> float:
        return self.resolved / self.numbers if self.numbers else 1.0


@dataclass(frozen=True, slots=True)
class SpaceReport:
    regions: tuple[RegionSpace, ...]  # sorted by region code

    @property
    def numbers(self) -> int:
        return sum(r.numbers for r in self.regions)

    @property
    def resolved(self) -> int:
        return sum(r.resolved for r in self.regions)

    @property
    def share(self) -> float:
        return self.resolved / self.numbers if self.numbers else 1.0

    @property
    def by_source(self) -> tuple[tuple[str, int], ...]:
        return _sum_sources(r.by_source for r in self.regions)

    def agreement(self, source: str) -> Agreement:
        """The libphonenumber-based answer against one block source's holders, over these regions."""
        total = Agreement()
        for r in self.regions:
            for name, a in r.agreement:
                if name == source:
                    total = total + a
        return total

    def region(self, code: str) -> RegionSpace | None:
        return next((r for r in self.regions if r.region == code.upper()), None)

    def select(self, codes: Iterable[str]) -> SpaceReport:
        wanted = {c.upper() for c in codes}
        return SpaceReport(tuple(r for r in self.regions if r.region in wanted))


@dataclass
class _Tally:
    numbers: int = 0
    resolved: int = 0
    sources: Counter[str] = field(default_factory=Counter)
    runs: list[tuple[int, int, int, str]] = field(default_factory=list)  # (length, low, high, carrier)
    agreement: dict[str, Agreement] = field(default_factory=dict)


def _typical_e164_length(region: str) -> int:
    """The E.164 length (calling code and national number) of the region's typical mobile number; 0 if none."""
    national = typical_mobile_length(region) if region != NON_GEOGRAPHIC else None
    return len(str(phonenumbers.country_code_for_region(region))) + national if national else 0


def _mobile_segments(
    plan: NumberingPlan,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The plan's mobile segments of each region's typical length: (length, first number, last number, region)."""
    starts = plan.main_starts.astype(np.int64)
    ends = np.append(starts[1:], np.int64((MAX_KEYED + 1) * KEY_BASE)) - 1
    mobile = np.isin(plan.main_type, MOBILE_SPACE_TYPES) & (plan.main_region >= 0)
    lo, hi, region = starts[mobile], ends[mobile], plan.main_region[mobile].astype(np.int64)
    length = lo // KEY_BASE
    if np.any(hi // KEY_BASE != length):
        raise ValueError("a mobile segment of the numbering plan spans two number lengths")
    typical = np.array([_typical_e164_length(r) for r in plan.regions], dtype=np.int64)
    keep = length == typical[region]
    return length[keep], lo[keep] % KEY_BASE, hi[keep] % KEY_BASE, region[keep]


def mobile_space(
    networks: NetworkRegistry,
    plan: NumberingPlan,
    blocks: ShippedBlocks | None = None,
    largest: int = LARGEST,
) -> SpaceReport:
    """Per region and in total, how much of the mobile number space resolves to an MCC/MNC.

    Exact, not sampled: the plan's segments of mobile numbers are cut where a carrier
    prefix or a block starts or ends, and each piece is resolved once, as the resolver
    would resolve each of its numbers.
    """
    blocks = ShippedBlocks.shipped() if blocks is None else blocks
    lengths, lows, highs, regions = _mobile_segments(plan)
    carrier_starts = plan.carrier_starts.astype(np.int64)
    bstarts = blocks.ranges.starts
    name_cache: dict[tuple[int, int], tuple[str | None, str]] = {}
    tallies: dict[int, _Tally] = defaultdict(_Tally)
    for length in np.unique(lengths).tolist():
        sel = lengths == length
        seg_lo, seg_hi, seg_region = lows[sel], highs[sel], regions[sel]
        scale = 10 ** (WIDTH - length)  # a number of ``length`` digits, padded to 15
        cuts = [seg_lo, seg_hi + 1, -(-carrier_starts // scale)]
        if len(bstarts):
            cuts.append(-(-bstarts // scale))
        bounds = np.unique(np.concatenate(cuts))
        bounds = bounds[(bounds >= seg_lo[0]) & (bounds <= seg_hi[-1] + 1)]
        piece_lo, piece_len = bounds[:-1], np.diff(bounds)
        seg = np.searchsorted(seg_lo, piece_lo, side="right") - 1
        inside = (seg >= 0) & (piece_lo <= seg_hi[np.maximum(seg, 0)])
        piece_lo, piece_len, seg = piece_lo[inside], piece_len[inside], seg[inside]
        region = seg_region[seg]
        padded = piece_lo * scale
        entry = plan.carrier_entry[np.searchsorted(carrier_starts, padded, side="right") - 1].astype(np.int64)
        named = (entry >= 0) & (plan.entry_len[np.maximum(entry, 0)] <= length)
        name = np.where(named, plan.entry_name[np.maximum(entry, 0)], 0).astype(np.int64)
        holder = blocks.lookup(padded).astype(np.int64) if len(bstarts) else np.full(len(padded), -1)
        for r, n, h, lo, count in zip(
            region.tolist(), name.tolist(), holder.tolist(), piece_lo.tolist(), piece_len.tolist(), strict=True
        ):
            key = (r, n)
            if key not in name_cache:
                region_code, carrier_name = plan.regions[r], plan.carriers[n]
                mccmnc, _ = networks.network_for_carrier(region_code, carrier_name)
                source = name_source(networks, region_code, carrier_name, mccmnc) if mccmnc else ""
                name_cache[key] = (mccmnc, source)
            by_name, name_src = name_cache[key]
            t = tallies[r]
            t.numbers += count
            if h >= 0:
                b = blocks.holders[h]
                answer, source = b.mccmnc, block_source(b.source)
                same = Agreement(
                    agree=count if by_name and b.mccmnc and by_name == b.mccmnc else 0,
                    disagree=count if by_name and b.mccmnc and by_name != b.mccmnc else 0,
                    prefix_only=count if by_name and not b.mccmnc else 0,
                    block_only=count if b.mccmnc and not by_name else 0,
                    neither=count if not (by_name or b.mccmnc) else 0,
                )
                t.agreement[b.source] = t.agreement.get(b.source, Agreement()) + same
            else:
                answer, source = by_name, name_src
            if answer:
                t.resolved += count
                t.sources[source] += count
            else:
                carrier = plan.carriers[n]
                last = t.runs[-1] if t.runs else None
                if last and last[0] == length and last[2] + 1 == lo and last[3] == carrier:
                    t.runs[-1] = (length, last[1], lo + count - 1, carrier)
                else:
                    t.runs.append((length, lo, lo + count - 1, carrier))
    out = []
    for r, t in tallies.items():
        runs = sorted(t.runs, key=lambda run: (-(run[2] - run[1]), run[1]))[:largest]
        out.append(
            RegionSpace(
                region=plan.regions[r],
                numbers=t.numbers,
                resolved=t.resolved,
                by_source=tuple(sorted(t.sources.items(), key=lambda kv: (-kv[1], kv[0]))),
                unresolved=tuple(
                    UnresolvedBlock(str(lo).zfill(length), str(hi).zfill(length), hi - lo + 1, carrier)
                    for length, lo, hi, carrier in runs
                ),
                agreement=tuple(sorted(t.agreement.items())),
            )
        )
    return SpaceReport(tuple(sorted(out, key=lambda r: r.region)))
