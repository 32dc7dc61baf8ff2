"""Regenerate ``numlookup/numbering/data/blocks.csv``: number blocks whose holder the shipped data knows, offline.

libphonenumber names the carrier of a prefix; these sources name the holder of a block,
and a block beats a libphonenumber prefix (imported operator ranges still beat both):

1. **India** (``data/sources/in-mob-prefix/``, hstsethi/in-mob-prefix at 544fe1e, CC0 1.0):
   four-digit series → operator (AT, VI, RJ, CG) and telecom circle. India assigns MNCs per
   circle, so a series gets the MNC its operator holds in its circle: the registry's 404/405
   row whose brand is the operator and whose ``operator`` field names the circle
   (``CIRCLES`` below lists the names each circle goes by). Where the registry lists several
   codes of one operator in one circle, ``india_circle_mncs.csv`` (reviewed) picks the one
   its SIMs carry and says why. A five-digit block of a series is used only where
   libphonenumber names a carrier for it that agrees with the series' operator after merger
   normalisation (Idea, Vodafone → Vi; Tata Docomo, Telenor, Uninor, Telewings → Airtel;
   Reliance Jio → Jio; BSNL, MTNL → the state operators); the rest are counted, not used.
2. **France** (``data/sources/arcep/``, ARCEP's MAJNUM.csv, MAJMNC.csv and MAJRIO.csv,
   Licence Ouverte 2.0): every number block with its holder's mnemonic and territory, and
   the MNCs ARCEP attributed to each holder. Blocks whose numbers libphonenumber types as
   mobile are shipped, each with its holder's MNC under its territory's MCC (208 for
   metropolitan France, 340 for the Antilles, 742 then 340 for French Guiana, 647 for
   Réunion and Mayotte, 308 for Saint-Pierre-et-Miquelon). A holder with several MNCs there
   takes the one ``arcep_operators.csv`` (reviewed) names; a holder with none is shipped
   without an MNC, with its name, so that the API does not report the prefix's
   libphonenumber carrier for a block another company holds.
3. **Reviewed ranges** (``reviewed_ranges.csv``): prefixes decided by hand where one
   carrier name covers two networks' ranges (AT Ghana's ex-Airtel and ex-Tigo prefixes).

Usage::

    python scripts/build_blocks.py            # rewrite blocks.csv, print what was used and why not
    python scripts/build_blocks.py --check    # exit 1 if blocks.csv would change

Output: ``low,high,mccmnc,name,holder,source``, sorted by ``low``. ``low``/``high`` are
E.164 digits of one length; a row whose ``low`` equals its ``high`` is a prefix (every
number starting with it). ``mccmnc`` is empty where the holder has no MNC; ``name`` is the
holder's name where the source gives one (lookups show the registry's name for an MNC, else
this, else libphonenumber's carrier name if it too has no MNC, else ``holder``); ``holder``
is the source's own identifier (an
ARCEP mnemonic, in-mob-prefix's operator and circle codes); ``source`` is
``in-mob-prefix``, ``arcep`` or ``reviewed``.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import phonenumbers
from phonenumbers import PhoneNumberType
from phonenumbers.carrierdata import CARRIER_DATA

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "data" / "sources"
INDIA = SOURCES / "in-mob-prefix"
ARCEP = SOURCES / "arcep"
DATA_DIR = ROOT / "numlookup" / "numbering" / "data"
NETWORKS_CSV = DATA_DIR / "networks.csv"
INDIA_OVERRIDES_CSV = DATA_DIR / "india_circle_mncs.csv"
ARCEP_OPERATORS_CSV = DATA_DIR / "arcep_operators.csv"
REVIEWED_RANGES_CSV = DATA_DIR / "reviewed_ranges.csv"
BLOCKS_CSV = DATA_DIR / "blocks.csv"
FIELDS = ("low", "high", "mccmnc", "name", "holder", "source")
MOBILE_TYPES = (PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE)


@dataclass(frozen=True)
class Block:
    low: str  # E.164 digits
    high: str
    mccmnc: str
    name: str  # the holder's name where the source gives one
    holder: str  # the source's own identifier of the holder
    source: str


def read_csv(path: Path, encoding: str = "utf-8", delimiter: str = ",") -> list[dict[str, str]]:
    with path.open(encoding=encoding, newline="") as fh:
        return [
            {k.strip(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(fh, delimiter=delimiter)
        ]


def is_mobile(e164_digits: str) -> bool:
    try:
        number = phonenumbers.parse("+" + e164_digits)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number) and phonenumbers.number_type(number) in MOBILE_TYPES


def libphonenumber_carrier(e164_digits: str) -> str | None:
    """The English carrier name of the longest carrier-data prefix of ``e164_digits``."""
    for cut in range(len(e164_digits), 0, -1):
        names = CARRIER_DATA.get(e164_digits[:cut])
        if names is not None and names.get("en") is not None:
            return str(names["en"])
    return None


# ---------------------------------------------------------------- India

# in-mob-prefix's circle codes and the names the registry's 404/405 rows give each circle.
CIRCLES: dict[str, tuple[str, ...]] = {
    "AP": ("Andhra Pradesh and Telangana", "Andhra Pradesh"),
    "AS": ("Assam",),
    "BR": ("Bihar & Jharkhand", "Bihar", "Bihar/Jharkhand"),
    "DL": ("Delhi & NCR", "Delhi"),  # metro
    "GJ": ("Gujarat",),
    "HP": ("Himachal Pradesh",),
    "HR": ("Haryana",),
    "JK": ("Jammu & Kashmir",),
    "KA": ("Karnataka", "Karnataka (Bangalore)"),
    "KL": ("Kerala",),
    "KO": ("Kolkata",),  # metro
    "MH": ("Maharashtra & Goa", "Maharashtra"),
    "MP": ("Madhya Pradesh & Chhattisgarh", "Madhya Pradesh & Chattishgarh", "Madhya Pradesh"),
    "MU": ("Mumbai",),  # metro
    "NE": ("North East",),
    "OR": ("Odisha", "Orissa"),
    "PB": ("Punjab",),
    "RJ": ("Rajasthan",),
    "TN": ("Tamil Nadu", "Tamil Nadu (incl. Chennai)", "Tamil Nadu including Chennai", "Tamilnadu"),
    "CH": ("Chennai",),  # metro, licensed together with Tamil Nadu since 2005
    "UE": ("Uttar Pradesh (East)",),
    "UW": ("Uttar Pradesh (West)", "Uttar Pradesh (West) & Uttarakhand"),
    "WB": ("West Bengal",),
}
# in-mob-prefix's operator codes and the registry brands of their networks (BSNL and MTNL are "CG").
OPERATORS: dict[str, tuple[str, ...]] = {
    "AT": ("airtel",),
    "VI": ("vi india",),
    "RJ": ("jio",),
    "CG": ("bsnl mobile", "mtnl"),
}
# libphonenumber's Indian carrier names after merger normalisation, as in-mob-prefix's codes.
MERGED: dict[str, str] = {
    "Airtel": "AT",
    "Tata Docomo": "AT",  # consumer mobile business merged into Airtel (2019)
    "Telenor": "AT",  # Telenor India merged into Airtel (2018)
    "Uninor": "AT",  # Telenor India's brand
    "Telewings": "AT",  # Telenor India's licensee company
    "Idea": "VI",  # Vodafone Idea (2018)
    "Vodafone": "VI",
    "Reliance Jio": "RJ",
    "BSNL MOBILE": "CG",
    "MTNL": "CG",
}


@dataclass
class IndiaReport:
    series: int = 0  # series with an operator and a circle
    skipped: Counter[str] | None = None  # why a series could not be read
    used: int = 0  # series with at least one block used
    used_whole: int = 0  # series with all ten blocks used
    disagree: int = 0  # series where libphonenumber names another operator for at least one block
    disagree_whole: int = 0  # ... for all its named blocks
    unnamed: int = 0  # series libphonenumber names no carrier for
    blocks: int = 0
    blocks_disagree: int = 0
    blocks_unnamed: int = 0


def india_circle_mncs(networks: list[dict[str, str]]) -> dict[tuple[str, str], str]:
    """(circle, operator) → MNC: the reviewed table where it speaks, else the one matching registry row."""
    reviewed = {(r["circle"], r["operator"]): r for r in read_csv(INDIA_OVERRIDES_CSV)}
    for key, row in reviewed.items():
        if not row["note"]:
            raise ValueError(f"india_circle_mncs.csv {key}: every reviewed row needs a note")
    out: dict[tuple[str, str], str] = {}
    problems = []
    for circle, names in CIRCLES.items():
        for operator, brands in OPERATORS.items():
            rows = [
                n
                for n in networks
                if n["mcc"] in ("404", "405") and n["brand"].lower() in brands and n["operator"] in names
            ]
            if operator == "CG":  # MTNL serves Delhi and Mumbai, BSNL every other circle
                rows = [n for n in rows if (n["brand"] == "MTNL") == (circle in ("DL", "MU"))]
            if (circle, operator) in reviewed:
                mccmnc = reviewed[(circle, operator)]["mccmnc"]
                if mccmnc and not any(n["mccmnc"] == mccmnc for n in networks):
                    problems.append(f"{circle} {operator}: {mccmnc} is not in networks.csv")
                if mccmnc:
                    out[(circle, operator)] = mccmnc
            elif len(rows) == 1 and rows[0]["status"] == "Operational":
                out[(circle, operator)] = rows[0]["mccmnc"]
            else:
                codes = ", ".join(f"{n['mccmnc']} ({n['status']})" for n in rows) or "none"
                problems.append(f"{circle} {operator}: registry codes {codes}; india_circle_mncs.csv must decide")
    if problems:
        raise ValueError("India circles undecided:\n  " + "\n  ".join(problems))
    return out


def read_series() -> Iterator[tuple[str, str, str]]:
    for name in ("6xxx", "7xxx", "8xxx", "9xxx"):
        for row in read_csv(INDIA / f"{name}-in-mob-prefix.csv"):
            yield row["series"], row["operator"], row["circle"]


def india_blocks(networks: list[dict[str, str]]) -> tuple[list[Block], IndiaReport]:
    mncs = india_circle_mncs(networks)
    report = IndiaReport(skipped=Counter())
    assert report.skipped is not None
    blocks: list[Block] = []
    for series, operator, circle in read_series():
        if not (operator and circle):
            continue
        report.series += 1
        if operator not in OPERATORS:
            report.skipped[f"operator code {operator!r} (not in the legend)"] += 1
            continue
        if circle not in CIRCLES:
            report.skipped[f"circle code {circle!r} (not in the legend)"] += 1
            continue
        mccmnc = mncs[(circle, operator)]
        used = disagree = named = 0
        for digit in "0123456789":
            prefix = "91" + series + digit
            name = libphonenumber_carrier(prefix)
            if name is None:
                report.blocks_unnamed += 1
                continue
            named += 1
            if MERGED.get(name) != operator:
                disagree += 1
                report.blocks_disagree += 1
                continue
            used += 1
            report.blocks += 1
            blocks.append(Block(prefix, prefix, mccmnc, "", f"{operator} {circle}", "in-mob-prefix"))
        report.used += used > 0
        report.used_whole += used == 10
        report.disagree += disagree > 0
        report.disagree_whole += named > 0 and disagree == named
        report.unnamed += named == 0
    return blocks, report


# ---------------------------------------------------------------- France

# MAJNUM's Territoire → (calling code, MCCs in order of preference for the holder's MNC).
TERRITORIES: dict[str, tuple[str, tuple[str, ...]]] = {
    "Métropole": ("33", ("208",)),
    "National": ("33", ("208",)),
    "Guadeloupe, St Martin et St Barthélemy": ("590", ("340",)),
    "Martinique": ("596", ("340",)),
    "Guyane": ("594", ("742", "340")),
    "La Réunion": ("262", ("647",)),
    "La Réunion - Océan indien": ("262", ("647",)),
    "Mayotte": ("262", ("647",)),
    "Saint Pierre et Miquelon": ("508", ("308",)),
}


@dataclass
class FranceReport:
    blocks: int = 0  # MAJNUM rows read
    mobile: int = 0  # of them, blocks of mobile numbers
    with_mnc: int = 0
    numbers: int = 0
    numbers_with_mnc: int = 0
    holders_without_mnc: Counter[str] | None = None  # holder → mobile numbers


def arcep_holders() -> tuple[dict[tuple[str, str], list[str]], dict[str, str]]:
    """(mnemonic, MCC) → the MNCs ARCEP attributed, and mnemonic → holder name."""
    names = {r["Code Attributaire"].upper(): r["Attributaire"] for r in read_csv(ARCEP / "MAJRIO.csv", "latin-1", ";")}
    by_holder: dict[tuple[str, str], list[str]] = {}
    for row in read_csv(ARCEP / "MAJMNC.csv", "latin-1", ";"):
        code, mnemo = row["MCC-MNC"], row["Mnémo"].upper()
        names.setdefault(mnemo, row["Nom"])
        if code.isdigit() and len(code) in (5, 6):  # 8-digit entries are private networks' IMSI blocks
            by_holder.setdefault((mnemo, code[:3]), []).append(code)
    return by_holder, names


def arcep_mncs(needed: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """(mnemonic, territory) → the holder's MNC there, for every pair ``needed`` that has one."""
    by_holder, _ = arcep_holders()
    reviewed = {(r["mnemo"], r["territory"]): r for r in read_csv(ARCEP_OPERATORS_CSV)}
    out: dict[tuple[str, str], str] = {}
    problems = []
    for key, row in sorted(reviewed.items()):
        if key[1] not in TERRITORIES or not row["note"]:
            problems.append(f"arcep_operators.csv {key}: unknown territory or no note")
        elif key not in needed:
            problems.append(f"arcep_operators.csv {key}: the holder has no mobile block there")
    for mnemo, territory in sorted(needed):
        if (mnemo, territory) in reviewed:
            mccmnc = reviewed[(mnemo, territory)]["mccmnc"]
            if mccmnc:
                out[(mnemo, territory)] = mccmnc
            continue
        mccs = TERRITORIES[territory][1]
        codes = next((by_holder[(mnemo, mcc)] for mcc in mccs if (mnemo, mcc) in by_holder), [])
        if len(codes) == 1:
            out[(mnemo, territory)] = codes[0]
        elif len(codes) > 1:
            problems.append(f"{mnemo} in {territory}: MNCs {', '.join(codes)}; arcep_operators.csv must decide")
    if problems:
        raise ValueError("ARCEP holders undecided:\n  " + "\n  ".join(problems))
    return out


def france_blocks() -> tuple[list[Block], FranceReport]:
    report = FranceReport(holders_without_mnc=Counter())
    assert report.holders_without_mnc is not None
    mobile: list[tuple[str, str, str, str, int]] = []  # (low, high, mnemonic, territory, size)
    for row in read_csv(ARCEP / "MAJNUM.csv", "latin-1", ";"):
        report.blocks += 1
        start, end, mnemo, territory = row["Tranche_Debut"], row["Tranche_Fin"], row["Mnémo"].upper(), row["Territoire"]
        if territory not in TERRITORIES:
            raise ValueError(f"MAJNUM.csv: unknown Territoire {territory!r}")
        code = TERRITORIES[territory][0]
        low, high = code + start[1:], code + end[1:]
        if start.startswith("0") and len(start) == len(end) and is_mobile(low) and is_mobile(high):
            mobile.append((low, high, mnemo, territory, int(end) - int(start) + 1))
    mncs = arcep_mncs({(mnemo, territory) for _, _, mnemo, territory, _ in mobile})
    _, names = arcep_holders()
    blocks: list[Block] = []
    for low, high, mnemo, territory, size in mobile:
        report.mobile += 1
        report.numbers += size
        mccmnc = mncs.get((mnemo, territory), "")
        if mccmnc:
            report.with_mnc += 1
            report.numbers_with_mnc += size
        else:
            report.holders_without_mnc[mnemo] += size
        blocks.append(Block(low, high, mccmnc, names.get(mnemo, ""), mnemo, "arcep"))
    return blocks, report


def reviewed_blocks() -> list[Block]:
    rows = read_csv(REVIEWED_RANGES_CSV)
    for row in rows:
        if not (row["prefix"].isdigit() and row["mccmnc"].isdigit() and row["note"]):
            raise ValueError(f"reviewed_ranges.csv: {row} needs digits and a note")
    return [Block(r["prefix"], r["prefix"], r["mccmnc"], "", r["holder"], "reviewed") for r in rows]


# ---------------------------------------------------------------- output


def compact(blocks: Iterable[Block]) -> list[Block]:
    """Sort; join neighbours with the same MNC, holder and source; write each as its shortest digits.

    Blocks are compared as the intervals they cover among 15-digit padded numbers (``low``
    padded with 0s, ``high`` with 9s, as imports read ranges): ``33612000000``–``33612999999``
    and the prefix ``33612`` are the same block, and are written as the prefix.
    """
    padded = sorted(
        ((int(b.low.ljust(15, "0")), int(b.high.ljust(15, "9")), b) for b in blocks), key=lambda t: (t[0], t[1])
    )
    merged: list[tuple[int, int, Block]] = []
    for low, high, b in padded:
        if merged:
            last_low, last_high, last = merged[-1]
            if low <= last_high:
                raise ValueError(f"blocks overlap: {last} and {b}")
            if last_high + 1 == low and (last.mccmnc, last.name, last.holder, last.source) == (
                b.mccmnc,
                b.name,
                b.holder,
                b.source,
            ):
                merged[-1] = (last_low, high, last)
                continue
        merged.append((low, high, b))
    out = []
    for low, high, b in merged:
        lo, hi = f"{low:015d}", f"{high:015d}"
        cut = 15
        while cut > 1 and lo[cut - 1] == "0" and hi[cut - 1] == "9":
            cut -= 1
        out.append(Block(lo[:cut], hi[:cut], b.mccmnc, b.name, b.holder, b.source))
    return out


def render(blocks: list[Block]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    for b in blocks:
        writer.writerow([b.low, b.high, b.mccmnc, b.name, b.holder, b.source])
    return out.getvalue()


def build() -> tuple[str, list[str]]:
    networks = read_csv(NETWORKS_CSV)
    known = {n["mccmnc"] for n in networks}
    india, ir = india_blocks(networks)
    france, fr = france_blocks()
    reviewed = reviewed_blocks()
    blocks = compact([*india, *france, *reviewed])
    missing = sorted({b.mccmnc for b in blocks if b.mccmnc and b.mccmnc not in known})
    if missing:
        raise ValueError(f"blocks name MCC/MNCs missing from networks.csv: {missing}")
    assert ir.skipped is not None and fr.holders_without_mnc is not None
    report = [
        f"in-mob-prefix: {ir.series} series with an operator and a circle; "
        f"{ir.used} used ({ir.used_whole} in all ten blocks), {ir.disagree} disagree with libphonenumber in at least "
        f"one block ({ir.disagree_whole} in every block it names), {ir.unnamed} not named by libphonenumber",
        *(f"  skipped {count} series: {why}" for why, count in sorted(ir.skipped.items())),
        f"  five-digit blocks: {ir.blocks} used, {ir.blocks_disagree} disagree, {ir.blocks_unnamed} unnamed",
        f"arcep: {fr.blocks} MAJNUM blocks, {fr.mobile} of mobile numbers ({fr.numbers:,} numbers); "
        f"{fr.with_mnc} with the holder's MNC ({fr.numbers_with_mnc:,} numbers)",
        "  mobile numbers of holders without an MNC: "
        + ", ".join(f"{m} {n:,}" for m, n in fr.holders_without_mnc.most_common()),
        f"reviewed: {len(reviewed)} prefixes",
        f"{len(blocks)} rows in blocks.csv",
    ]
    return render(blocks), report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if the output would change")
    args = parser.parse_args(argv)
    text, report = build()
    print("\n".join(report))
    if args.check:
        current = BLOCKS_CSV.read_text(encoding="utf-8") if BLOCKS_CSV.exists() else ""
        if current != text:
            print(f"{BLOCKS_CSV.name} is out of date")
            return 1
        return 0
    BLOCKS_CSV.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
