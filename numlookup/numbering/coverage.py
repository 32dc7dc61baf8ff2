"""How much of libphonenumber's mobile carrier data resolves to an MCC/MNC.

libphonenumber names the carrier of a mobile prefix; ``NetworkRegistry`` turns the name
into an MCC/MNC. ``coverage`` measures, per region and in total, the share of carrier
prefixes that get an ``mccmnc``, weighting each prefix by the national numbers it
covers, so that a name covering ``+49 151`` counts for more than a name covering one
M2M block.

Number counts are approximate. A prefix ``p`` of a region whose typical mobile
national significant number is ``L`` digits long covers ``10 ** (L - len(p))``
numbers, minus what longer prefixes inside it cover. ``L`` is the length of
libphonenumber's example mobile number for the region (its longest mobile
``possible_length`` where there is no example): taking the longest possible length
would let the long M2M numbering of a few regions (Austria's mobile numbers run to 13
digits) outweigh the rest of the world. A prefix shared by several regions of one
calling code (+44 GB/GG/JE/IM, +7 RU/KZ, ...) is attributed by validating a few sample
numbers. Treat the counts as weights, not as a census of numbers in use.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import phonenumbers
from phonenumbers.carrierdata import CARRIER_DATA

from numlookup.numbering.networks import NetworkRegistry

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

    def region(self, code: str) -> RegionCoverage | None:
        return next((r for r in self.regions if r.region == code.upper()), None)

    def select(self, codes: Iterable[str]) -> CoverageReport:
        wanted = {c.upper() for c in codes}
        return CoverageReport(tuple(r for r in self.regions if r.region in wanted))


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


def coverage(networks: NetworkRegistry) -> CoverageReport:
    """Per region and in total, the weighted share of carrier prefixes that resolve to an mccmnc."""
    prefixes: dict[str, int] = defaultdict(int)
    mapped_prefixes: dict[str, int] = defaultdict(int)
    numbers: dict[str, int] = defaultdict(int)
    mapped_numbers: dict[str, int] = defaultdict(int)
    unmapped: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for p in carrier_prefixes():
        mccmnc, _ = networks.network_for_carrier(p.region, p.name)
        prefixes[p.region] += 1
        numbers[p.region] += p.numbers
        if mccmnc:
            mapped_prefixes[p.region] += 1
            mapped_numbers[p.region] += p.numbers
        else:
            unmapped[p.region][p.name] += p.numbers
    return CoverageReport(
        tuple(
            RegionCoverage(
                region=region,
                prefixes=prefixes[region],
                mapped_prefixes=mapped_prefixes[region],
                numbers=numbers[region],
                mapped_numbers=mapped_numbers[region],
                unmapped=tuple(sorted(unmapped[region].items(), key=lambda kv: (-kv[1], kv[0]))),
            )
            for region in sorted(prefixes)
        )
    )
