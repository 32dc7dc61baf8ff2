"""List libphonenumber's mobile carrier names and how numlookup maps them to MCC/MNC.

Why this exists
---------------
numlookup answers "which mobile network is this number on?" in two steps:
libphonenumber's carrier data gives a carrier *name* for a number prefix, and
our own table ``numlookup/numbering/data/carrier_networks.csv`` turns that name
into an MCC/MNC (``mccmnc``) described in ``networks.csv``. libphonenumber
names are free text that changes between releases (renames, new MVNOs), so the
mapping goes stale silently. This script shows, per region, every English
carrier name libphonenumber knows, how many national numbers its prefixes
cover (so reviewers can work on the names that matter first), and whether and
to what we map it.

Usage::

    python scripts/carrier_names.py [REGION ...]      # report (default: all regions)
    python scripts/carrier_names.py --check [REGION ...]

``--check`` exits non-zero if carrier_networks.csv names a carrier that
libphonenumber does not have for that region, uses an mccmnc missing from
networks.csv, or if a must-cover region (see ``MUST_COVER``) has a carrier
name with no row in carrier_networks.csv. A row with an empty mccmnc is a
reviewed, deliberate "no MNC of its own" decision and must carry a note.

Number counts are approximate: a prefix ``p`` of a region whose mobile national
significant numbers are at most ``L`` digits long (max of the region's mobile
``possible_length`` in phonenumbers' metadata) covers ``10 ** (L - len(p))``
numbers, minus what longer prefixes inside it cover. Real ranges are not
always full-length or fully allocated, and a prefix shared by several regions
of one calling code (e.g. +44 GB/GG/JE/IM) is attributed by validating a few
sample numbers, so treat the counts as an ordering aid, not a statistic.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import phonenumbers
from phonenumbers.carrierdata import CARRIER_DATA

DATA_DIR = Path(__file__).resolve().parent.parent / "numlookup" / "numbering" / "data"
NETWORKS_CSV = DATA_DIR / "networks.csv"
CARRIER_NETWORKS_CSV = DATA_DIR / "carrier_networks.csv"

# Regions whose every carrier name must have a reviewed row in carrier_networks.csv.
MUST_COVER: tuple[str, ...] = ("EE", "FI", "DE", "GB", "NG", "KE", "ZA")

LANG = "en"


@dataclass(frozen=True)
class Mapping:
    mccmnc: str
    note: str


def _split_country_code(prefix: str) -> tuple[int, str] | None:
    """Split a carrier-data prefix into (country calling code, national part)."""
    for n in (1, 2, 3):
        cc = int(prefix[:n])
        if cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return cc, prefix[n:]
    return None


def _mobile_length(region: str) -> int | None:
    md = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if md is None or md.mobile is None or not md.mobile.possible_length:
        return None
    lengths = [n for n in md.mobile.possible_length if n > 0]
    return max(lengths) if lengths else None


def _region_for(cc: int, national: str) -> str:
    """Region of a national prefix; for shared calling codes, vote by validating samples."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE[cc]
    main = phonenumbers.region_code_for_country_code(cc)
    if len(regions) == 1:
        return main
    votes: dict[str, int] = defaultdict(int)
    for region in regions:
        length = _mobile_length(region)
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


def carrier_coverage() -> dict[str, dict[str, int]]:
    """region -> English carrier name -> approximate count of national numbers covered."""
    entries: list[tuple[str, str, str, str]] = []  # (prefix, region, national, name)
    for prefix, names in CARRIER_DATA.items():
        name = names.get(LANG)
        split = _split_country_code(prefix)
        if not name or split is None:
            continue
        cc, national = split
        entries.append((prefix, _region_for(cc, national), national, name))

    raw: dict[str, int] = {}
    for prefix, region, national, _ in entries:
        length = _mobile_length(region) or len(national)
        raw[prefix] = 10 ** max(length - len(national), 0)
    # Numbers under a more specific prefix belong to that prefix, not to its parent.
    net = dict(raw)
    for prefix in raw:
        for cut in range(len(prefix) - 1, 0, -1):
            parent = prefix[:cut]
            if parent in raw:
                net[parent] -= raw[prefix]
                break

    out: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for prefix, region, _, name in entries:
        out[region][name] += max(net[prefix], 0)
    return out


def load_networks(path: Path = NETWORKS_CSV) -> dict[str, dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return {row["mccmnc"]: row for row in csv.DictReader(f)}


def load_mappings(path: Path = CARRIER_NETWORKS_CSV) -> dict[tuple[str, str], Mapping]:
    with path.open(encoding="utf-8", newline="") as f:
        return {
            (row["region"], row["carrier_name"]): Mapping(row["mccmnc"], row["note"])
            for row in csv.DictReader(f)
        }


def check(
    coverage: dict[str, dict[str, int]],
    networks: dict[str, dict[str, str]],
    mappings: dict[tuple[str, str], Mapping],
) -> list[str]:
    problems: list[str] = []
    for (region, name), m in sorted(mappings.items()):
        if name not in coverage.get(region, {}):
            problems.append(f"{region}: {name!r} is mapped but libphonenumber has no such carrier")
        if m.mccmnc and m.mccmnc not in networks:
            problems.append(f"{region}: {name!r} -> {m.mccmnc} which is not in networks.csv")
        if not m.mccmnc and not m.note.strip():
            problems.append(f"{region}: {name!r} is left unmapped without a note")
    for region in MUST_COVER:
        for name in sorted(coverage.get(region, {})):
            if (region, name) not in mappings:
                problems.append(f"{region}: {name!r} has no row in carrier_networks.csv")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("regions", nargs="*", metavar="REGION", help="region codes (default: all)")
    parser.add_argument("--check", action="store_true", help="validate the tables; exit 1 on problems")
    args = parser.parse_args(argv)

    coverage = carrier_coverage()
    networks = load_networks()
    mappings = load_mappings()
    regions = [r.upper() for r in args.regions] or sorted(coverage)

    if args.check:
        problems = check(coverage, networks, mappings)
        for p in problems:
            print(p)
        n_mapped = sum(1 for m in mappings.values() if m.mccmnc)
        print(
            f"{len(networks)} networks, {len(mappings)} carrier rows "
            f"({n_mapped} mapped, {len(mappings) - n_mapped} deliberately unmapped), "
            f"{len(problems)} problem(s)"
        )
        return 1 if problems else 0

    for region in regions:
        names = coverage.get(region)
        if not names:
            print(f"{region}: no carrier data")
            continue
        print(f"{region}:")
        for name, count in sorted(names.items(), key=lambda kv: (-kv[1], kv[0])):
            m = mappings.get((region, name))
            if m is None:
                status = "UNMAPPED"
            elif m.mccmnc:
                net = networks.get(m.mccmnc, {}).get("network_name", "?")
                status = f"{m.mccmnc} ({net})"
            else:
                status = "no MNC (reviewed)"
            print(f"  {count:>14,}  {name:<40}  {status}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
