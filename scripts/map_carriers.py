"""Regenerate ``numlookup/numbering/data/carrier_networks.csv`` from overrides and matching rules.

libphonenumber names the carrier of each mobile prefix in free text ("Telia",
"Elisa Oyj", "MTN - Nigeria"); the registry ``networks.csv`` lists MCC/MNCs with a
brand and an operator. For every (region, English carrier name) of libphonenumber's
carrier data this script decides the MCC/MNC:

1. **Override** (``carrier_overrides.csv``, reviewed by hand): its ``mccmnc`` wins,
   including an empty one, which means "reviewed: no MNC of its own" (the note says
   why). The output note is ``override: <reviewed note>``.
2. **Rules**, tried in this order against the registry records of the region's
   country (a record listed under several countries, e.g. ``GB/GG/JE``, counts for
   each; the first rule that finds a candidate decides):

   - ``exact name``: the normalised name equals a record's normalised brand,
     operator or network name (normalised: accents and case folded, ``&`` read as
     ``and``, punctuation turned into spaces);
   - ``legal suffix stripped``: the same after dropping legal-form words (AS, AB,
     Oy, Oyj, Ltd, Limited, plc, GmbH, S.A., SA, Inc, LLC, JSC, NV, BV, ...);
   - ``tokens contained``: all of the carrier name's remaining words occur in a
     record's brand or operator, or all words of a record's brand occur in the name;
   - ``telecom words stripped``: the same again after also dropping generic words
     (Telecom, Telecommunications, Telekom, Mobile, Cellular, Wireless, Networks,
     Communications, ...), as a last resort.

   When none of them finds a record, the first three rules are tried against the
   registry's ``android_name`` (the name Android's carrier ID table gives the code):
   the note then reads ``rule: android name, <rule>``.

   Codes whose status is "Not operational", "Returned spare" or "Reserved" are never
   chosen by a rule. When several MNCs remain, operational ones are preferred, then
   codes under the region's own MCC, and the lowest operational MNC is taken: the note
   then reads ``rule: several MNCs, lowest operational`` and names the rule and the
   other candidates. Every such row is reviewed: ``carrier_names.py --check`` fails on
   one that no override decides. The output note of a single match is ``rule: <rule>``.

A name that neither an override nor a rule resolves gets no row; lookups then return
the carrier name with a null mccmnc, and ``numlookup data coverage`` lists it.

Usage::

    python scripts/map_carriers.py            # rewrite carrier_networks.csv, print rule counts
    python scripts/map_carriers.py --check    # exit 1 if carrier_networks.csv is out of date
    python scripts/map_carriers.py --explain REGION   # every name of REGION and how it was decided
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from numlookup.numbering.coverage import carrier_numbers  # noqa: E402  # after sys.path names the checkout

DATA_DIR = ROOT / "numlookup" / "numbering" / "data"
NETWORKS_CSV = DATA_DIR / "networks.csv"
OVERRIDES_CSV = DATA_DIR / "carrier_overrides.csv"
CARRIER_NETWORKS_CSV = DATA_DIR / "carrier_networks.csv"
FIELDS = ("region", "carrier_name", "mccmnc", "note")

LEGAL_WORDS = frozenset(
    """
    as asa ab oy oyj ltd limited plc gmbh ag kg sa sas sarl sae spa srl sro inc llc llp lp co corp
    corporation company pty pvt private public jsc ojsc pjsc cjsc nv bv bvba sprl ltda cv
    de kft zrt nyrt doo dd ad ead tbk pt bhd sdn aps a/s the
    """.split()
)
TELECOM_WORDS = frozenset(
    """
    telecom telecoms telecommunication telecommunications telekom telekomunikasi telecomunicaciones
    telecomunicacoes telecomunicazioni telecommunicatie tel tele telco mobile mobiles mobil mobility
    cellular cell wireless communications communication comms network networks services service group
    holding holdings international global solutions gsm
    """.split()
)
DEAD = frozenset({"Not operational", "Returned spare", "Reserved"})
RULES = ("exact name", "legal suffix stripped", "tokens contained", "telecom words stripped")


@dataclass(frozen=True)
class Network:
    mccmnc: str
    countries: tuple[str, ...]
    name: str
    brand: str
    operator: str
    status: str
    android_name: str = ""


@dataclass(frozen=True)
class Decision:
    mccmnc: str
    note: str
    kind: str  # "override" or the rule that decided


def fold(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = text.replace("&", " and ")
    # Dotted legal forms become one word before punctuation goes: S.A. -> sa, N.V. -> nv, S.p.A. -> spa.
    text = re.sub(r"\b(?:[a-z]\.){2,}", lambda m: m.group(0).replace(".", ""), text)
    text = re.sub(r"\b([a-z])\.([a-z]{2,3})\b\.?", r"\1\2", text)
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text).split())


def words(text: str, drop: frozenset[str] = frozenset()) -> tuple[str, ...]:
    return tuple(w for w in fold(text).split() if w not in drop)


def load_networks(path: Path = NETWORKS_CSV) -> list[Network]:
    with path.open(encoding="utf-8", newline="") as fh:
        return [
            Network(
                mccmnc=row["mccmnc"],
                countries=tuple(c for c in row["country_iso"].split("/") if c),
                name=row["network_name"],
                brand=row.get("brand", ""),
                operator=row["operator"],
                status=row.get("status", ""),
                android_name=row.get("android_name", ""),
            )
            for row in csv.DictReader(fh)
        ]


def load_overrides(path: Path = OVERRIDES_CSV) -> dict[tuple[str, str], tuple[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return {(row["region"], row["carrier_name"]): (row["mccmnc"], row["note"]) for row in csv.DictReader(fh)}


def _candidates(name: str, networks: list[Network], rules: tuple[str, ...] = RULES) -> tuple[str, list[Network]] | None:
    """The first rule that finds registry records for ``name``, and those records."""
    for rule in rules:
        if rule == "exact name":
            key = fold(name)
            found = [n for n in networks if key and key in {fold(n.brand), fold(n.operator), fold(n.name)}]
        else:
            drop = LEGAL_WORDS if rule != "telecom words stripped" else LEGAL_WORDS | TELECOM_WORDS
            mine = words(name, drop)
            if not mine or (rule == "telecom words stripped" and max(len(w) for w in mine) < 3):
                continue
            found = []
            for n in networks:
                brand, operator, label = words(n.brand, drop), words(n.operator, drop), words(n.name, drop)
                if rule == "legal suffix stripped":
                    hit = mine in {brand, operator, label}
                else:
                    theirs = set(brand) | set(operator) | set(label)
                    hit = set(mine) <= theirs or any(b and set(b) <= set(mine) for b in (brand, label))
                if hit:
                    found.append(n)
        if found:
            return rule, found
    return None


def _mnc_order(region: str) -> Callable[[Network], tuple[bool, int, str]]:
    """Codes under the region's own MCC first (a code listed for several countries is the MCC owner's), then by MNC."""
    return lambda n: (n.countries[:1] != (region,), int(n.mccmnc[3:]), n.mccmnc)


def _android_names(networks: list[Network]) -> list[Network]:
    """The registry records again, named as Android's carrier ID table names them."""
    return [
        Network(n.mccmnc, n.countries, n.android_name, n.android_name, "", n.status) for n in networks if n.android_name
    ]


def decide_by_rules(region: str, name: str, by_country: dict[str, list[Network]]) -> Decision | None:
    networks = by_country.get(region, [])
    match = _candidates(name, networks)
    if match is None:
        # Android's names are a second source, tried last and without the loosest rule.
        match = _candidates(name, _android_names(networks), RULES[:3])
        if match is None:
            return None
        match = (f"android name, {match[0]}", match[1])
    rule, found = match
    alive = [n for n in found if n.status not in DEAD]
    if not alive:
        return None
    operational = [n for n in alive if n.status == "Operational"]
    pool = sorted(operational or alive, key=_mnc_order(region))
    if len(alive) == 1:
        return Decision(alive[0].mccmnc, f"rule: {rule}", rule)
    chosen = pool[0]
    others = ", ".join(n.mccmnc for n in sorted(alive, key=_mnc_order(region)) if n is not chosen)
    head = "several MNCs, lowest operational" if operational else "several MNCs, lowest (none listed as operational)"
    return Decision(chosen.mccmnc, f"rule: {head}; {rule}; also {others}", head)


def decide_all(
    names: dict[str, dict[str, int]],
    networks: list[Network],
    overrides: dict[tuple[str, str], tuple[str, str]],
) -> dict[tuple[str, str], Decision | None]:
    by_country: dict[str, list[Network]] = {}
    for n in networks:
        for c in n.countries:
            by_country.setdefault(c, []).append(n)
    out: dict[tuple[str, str], Decision | None] = {}
    for region in sorted(names):
        for name in sorted(names[region]):
            override = overrides.get((region, name))
            if override is not None:
                mccmnc, note = override
                out[(region, name)] = Decision(mccmnc, f"override: {note}" if note else "override", "override")
            else:
                out[(region, name)] = decide_by_rules(region, name, by_country)
    return out


def render(decisions: dict[tuple[str, str], Decision | None]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(FIELDS)
    for (region, name), d in sorted(decisions.items()):
        if d is not None:
            writer.writerow([region, name, d.mccmnc, d.note])
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if the output would change")
    parser.add_argument("--explain", metavar="REGION", help="print every carrier name of REGION and its decision")
    args = parser.parse_args(argv)

    names = carrier_numbers()
    networks = load_networks()
    overrides = load_overrides()
    known = {n.mccmnc for n in networks}
    problems = [
        f"override {region} {name!r} -> {mccmnc} is not in networks.csv"
        for (region, name), (mccmnc, _) in overrides.items()
        if mccmnc and mccmnc not in known
    ]
    problems += [
        f"override {region} {name!r}: libphonenumber has no such carrier"
        for (region, name) in overrides
        if name not in names.get(region, {})
    ]
    decisions = decide_all(names, networks, overrides)

    if args.explain:
        region = args.explain.upper()
        by_name = names.get(region, {})
        for name in sorted(by_name, key=lambda k: (-by_name[k], k)):
            d = decisions[(region, name)]
            print(
                f"{by_name[name]:>14,}  {name:<40}  {(d.mccmnc or '-') if d else 'UNMAPPED':<7}  {d.note if d else ''}"
            )
        return 0

    counts = Counter(
        ("override, no MNC" if not d.mccmnc else d.kind.removeprefix("android name, ")) if d else "unmatched"
        for d in decisions.values()
    )
    android = sum(1 for d in decisions.values() if d and d.note.startswith("rule: android name"))
    print(f"{len(decisions)} (region, carrier name) pairs:")
    for kind in (
        "override",
        "override, no MNC",
        *RULES,
        "several MNCs, lowest operational",
        "several MNCs, lowest (none listed as operational)",
        "unmatched",
    ):
        print(f"  {counts.get(kind, 0):>5}  {kind}")
    print(f"  ({android} of the rule matches on Android's names)")
    for p in problems:
        print(p)

    text = render(decisions)
    if args.check:
        current = CARRIER_NETWORKS_CSV.read_text(encoding="utf-8") if CARRIER_NETWORKS_CSV.exists() else ""
        if current != text:
            print("carrier_networks.csv is out of date")
            return 1
        return 1 if problems else 0
    CARRIER_NETWORKS_CSV.write_text(text, encoding="utf-8")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
