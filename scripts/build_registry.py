"""Regenerate ``numlookup/numbering/data/networks.csv``, the MCC/MNC network registry, offline.

Two registries, both vendored under ``data/sources/`` (see each folder's SOURCE.md), and a
reviewed table on top:

1. **Wikipedia** (``data/sources/wikipedia-mcc-mnc/mcc-mnc-list.json``): the export of
   Wikipedia's "Mobile Network Codes" tables made by ``cavoq/mcc-mnc-list`` on 2024-09-09
   (CC BY-SA; the exporter's code is MIT). It decides which codes exist, their holder, brand,
   status and country.
2. **Android's carrier ID table** (``data/sources/android-carrier-id/carrier_list.textpb``,
   AOSP, 2025-03-14, Apache-2.0): the carrier name Android shows for a SIM's MCC/MNC. Only
   entries that name a network by its MCC/MNC alone are read (an entry narrowed by GID1, SPN,
   IMSI or ICCID prefix, or with a parent carrier, is an MVNO riding on someone else's code).
   Its name goes into ``android_name`` for every code it lists (``map_carriers.py`` tries it
   when the Wikipedia names match nothing), and it supplies the codes Wikipedia lacks, when
   their MNC has the length the MCC's other codes have and the name is not a test or
   placeholder entry.
3. **Reviewed rows** (``numlookup/numbering/data/registry_overrides.csv``): decide where the
   two disagree on who a code belongs to (650-02), and add codes neither carries that a cited
   ITU Operational Bulletin lists (418-80 … 418-94 ITPC). The ITU text itself is never vendored.

``network_names.csv`` (reviewed) then gives the name subscribers know a network by.

Usage::

    python scripts/build_registry.py            # rewrite networks.csv, print what was read and skipped
    python scripts/build_registry.py --check    # exit 1 if networks.csv would change

Output columns: ``mccmnc,mcc,mnc,country_iso,network_name,brand,operator,status,android_name,source``,
one row per MCC/MNC, sorted by ``mccmnc``:

- ``country_iso``: ISO 3166-1 alpha-2 code(s) of the countries the source lists the code under,
  joined with ``/`` (``AU/CC/CX``, ``GB/GG/JE``), the MCC's own country first; empty for
  international and test codes (MCC 001, 9xx);
- ``brand``, ``operator``, ``status``: as Wikipedia gives them, from the record of the MCC's own
  country when a code is listed under several countries; Android-only codes have the Android
  name as brand and status ``Unknown``;
- ``network_name``: the reviewed name in ``network_names.csv`` when there is one, else the
  reviewed override's, else the brand, else the operator;
- ``source``: ``wikipedia``, ``android`` (a code only Android lists) or ``reviewed`` (a row of
  ``registry_overrides.csv``).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import re
import sys
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "data" / "sources"
WIKIPEDIA_JSON = SOURCES / "wikipedia-mcc-mnc" / "mcc-mnc-list.json"
ANDROID_TEXTPB = SOURCES / "android-carrier-id" / "carrier_list.textpb"
DATA_DIR = ROOT / "numlookup" / "numbering" / "data"
NETWORKS_CSV = DATA_DIR / "networks.csv"
NAMES_CSV = DATA_DIR / "network_names.csv"
OVERRIDES_CSV = DATA_DIR / "registry_overrides.csv"
FIELDS = (
    "mccmnc",
    "mcc",
    "mnc",
    "country_iso",
    "network_name",
    "brand",
    "operator",
    "status",
    "android_name",
    "source",
)
OVERRIDE_FIELDS = ("mccmnc", "country_iso", "network_name", "brand", "operator", "status", "note")
# Android entries that name no network a subscriber is on.
ANDROID_PLACEHOLDERS = re.compile(r"test|emulator|reserved|private", re.IGNORECASE)


@dataclass(frozen=True)
class SourceRecord:
    mcc: str
    mnc: str
    country: str  # as the source writes it: "EE", "AU/CC/CX", "GE-AB", or "" (international/test)
    brand: str
    operator: str
    status: str


def _clean(value: object) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def read_wikipedia(path: Path = WIKIPEDIA_JSON) -> tuple[list[SourceRecord], list[dict[str, object]]]:
    """Records with a usable MNC, and the raw records that were skipped (``?``, ``100 - 190``, 5-digit)."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    records, skipped = [], []
    for item in raw:
        mcc, mnc = _clean(item.get("mcc")), _clean(item.get("mnc"))
        if not (mcc.isdigit() and len(mcc) == 3 and mnc.isdigit() and len(mnc) in (2, 3)):
            skipped.append(item)
            continue
        records.append(
            SourceRecord(
                mcc=mcc,
                mnc=mnc,
                country=_clean(item.get("countryCode")),
                brand=_clean(item.get("brand")),
                operator=_clean(item.get("operator")),
                status=_clean(item.get("status")) or "Unknown",
            )
        )
    return records, skipped


# ---------------------------------------------------------------- Android's carrier_list.textpb

_TOKEN = re.compile(r'\s*(?:(\w+)\s*\{|(\})|(\w+)\s*:\s*("(?:[^"\\]|\\.)*"|\S+))')
Message = dict[str, list["str | Message"]]


def parse_textproto(text: str) -> Message:
    """The protobuf text format as this file uses it: ``name { … }`` blocks and ``name: value`` fields."""
    root: Message = {}
    stack = [root]
    pos, end = 0, len(text.rstrip())
    while pos < end:
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ValueError(f"cannot read the text proto at offset {pos}: {text[pos : pos + 40]!r}")
        pos = match.end()
        if match.group(1):
            child: Message = {}
            stack[-1].setdefault(match.group(1), []).append(child)
            stack.append(child)
        elif match.group(2):
            stack.pop()
        else:
            value = match.group(4)
            stack[-1].setdefault(match.group(3), []).append(json.loads(value) if value.startswith('"') else value)
    if len(stack) != 1:
        raise ValueError("unbalanced braces in the text proto")
    return root


@dataclass(frozen=True)
class AndroidCarrier:
    canonical_id: int
    name: str
    mccmnc: str


def read_android(path: Path = ANDROID_TEXTPB) -> tuple[dict[str, AndroidCarrier], str, int]:
    """MCC/MNC → the carrier Android names by that code alone; the table's version; how many tuples in all."""
    root = parse_textproto(path.read_text(encoding="utf-8"))
    version = str(root.get("version", ["?"])[0])
    plain: dict[str, list[AndroidCarrier]] = {}
    tuples: set[str] = set()
    for carrier in root.get("carrier_id", []):
        assert isinstance(carrier, dict)
        name, cid = str(carrier["carrier_name"][0]), int(str(carrier["canonical_id"][0]))
        for attribute in carrier.get("carrier_attribute", []):
            assert isinstance(attribute, dict)
            codes = [str(t) for t in attribute.get("mccmnc_tuple", [])]
            tuples.update(codes)
            if set(attribute) != {"mccmnc_tuple"} or "parent_canonical_id" in carrier:
                continue  # narrowed by GID1/SPN/IMSI/ICCID, or a child of another carrier: an MVNO
            for code in codes:
                if code.isdigit() and len(code) in (5, 6):
                    plain.setdefault(code, []).append(AndroidCarrier(cid, name, code))
    # A code two carriers claim by MCC/MNC alone names neither: keep it out.
    return {code: found[0] for code, found in plain.items() if len(found) == 1}, version, len(tuples)


def _split(country: str) -> list[str]:
    return [c for c in country.split("/") if c]


def _fold(text: str) -> frozenset[str]:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    return frozenset(re.sub(r"[^a-z0-9]+", " ", text).split())


@dataclass
class Built:
    rows: list[dict[str, str]]
    android_added: list[str]
    android_skipped: list[tuple[str, str, str]]  # (mccmnc, name, why)
    disagreements: list[tuple[str, str, str]]  # (mccmnc, Wikipedia's name, Android's name)
    overridden: list[str]


def build_rows(
    records: list[SourceRecord],
    android: dict[str, AndroidCarrier],
    names: dict[str, str],
    overrides: dict[str, dict[str, str]],
) -> Built:
    """Registry rows from the two sources, the reviewed overrides and names."""
    # The country that owns an MCC: the single country most of its records are listed under.
    owners: dict[str, Counter[str]] = {}
    for r in records:
        parts = _split(r.country)
        if len(parts) == 1:
            owners.setdefault(r.mcc, Counter())[parts[0]] += 1
    owner = {mcc: counts.most_common(1)[0][0] for mcc, counts in owners.items()}

    by_code: dict[str, list[SourceRecord]] = {}
    for r in records:
        by_code.setdefault(r.mcc + r.mnc, []).append(r)

    rows: dict[str, dict[str, str]] = {}
    for code, group in by_code.items():
        mcc = group[0].mcc
        home = owner.get(mcc, "")
        # The record for the MCC's own country describes the network; among equals the first listed wins,
        # except that an operational record beats a withdrawn one (the source lists some codes twice).
        main = min(
            group,
            key=lambda r: (home not in _split(r.country), r.status != "Operational", group.index(r)),
        )
        countries: list[str] = []
        for r in sorted(group, key=lambda r: r is not main):
            for c in _split(r.country):
                if c not in countries:
                    countries.append(c)
        if home in countries:
            countries.remove(home)
            countries.insert(0, home)
        rows[code] = {
            "mccmnc": code,
            "mcc": mcc,
            "mnc": main.mnc,
            "country_iso": "/".join(countries),
            "network_name": main.brand or main.operator,
            "brand": main.brand,
            "operator": main.operator,
            "status": main.status,
            "android_name": "",
            "source": "wikipedia",
        }

    # MNC lengths each MCC uses in Wikipedia: an Android tuple of another length is a misspelt code.
    lengths: dict[str, set[int]] = {}
    for code in rows:
        lengths.setdefault(code[:3], set()).add(len(code) - 3)
    added, skipped, disagreements = [], [], []
    for code, carrier in sorted(android.items()):
        if code in rows:
            rows[code]["android_name"] = carrier.name
            row = rows[code]
            if not _fold(carrier.name) & (_fold(row["brand"]) | _fold(row["operator"])):
                disagreements.append((code, row["brand"] or row["operator"], carrier.name))
            continue
        mcc, mnc = code[:3], code[3:]
        if ANDROID_PLACEHOLDERS.search(carrier.name):
            skipped.append((code, carrier.name, "a test or placeholder entry"))
        elif mcc not in lengths:
            skipped.append((code, carrier.name, f"MCC {mcc} has no code in Wikipedia's list"))
        elif len(mnc) not in lengths[mcc]:
            skipped.append(
                (code, carrier.name, f"MCC {mcc}'s codes have {'/'.join(map(str, sorted(lengths[mcc])))}-digit MNCs")
            )
        else:
            added.append(code)
            rows[code] = {
                "mccmnc": code,
                "mcc": mcc,
                "mnc": mnc,
                "country_iso": owner.get(mcc, ""),
                "network_name": carrier.name,
                "brand": carrier.name,
                "operator": "",
                "status": "Unknown",
                "android_name": carrier.name,
                "source": "android",
            }

    for code, o in sorted(overrides.items()):
        old = rows.get(code, {})
        rows[code] = {
            "mccmnc": code,
            "mcc": code[:3],
            "mnc": code[3:],
            "country_iso": o["country_iso"] or old.get("country_iso", ""),
            "network_name": o["network_name"] or old.get("network_name", ""),
            "brand": o["brand"] or old.get("brand", ""),
            "operator": o["operator"] or old.get("operator", ""),
            "status": o["status"] or old.get("status", "Unknown"),
            "android_name": old.get("android_name", ""),
            "source": "reviewed",
        }
    for code, name in names.items():
        if code in rows:
            rows[code]["network_name"] = name
    return Built([rows[code] for code in sorted(rows)], added, skipped, disagreements, sorted(overrides))


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def read_overrides(path: Path = OVERRIDES_CSV) -> dict[str, dict[str, str]]:
    rows = read_csv(path)
    for row in rows:
        if tuple(row) != OVERRIDE_FIELDS:
            raise ValueError(f"{path.name}: expected columns {','.join(OVERRIDE_FIELDS)}")
        if not (row["mccmnc"].isdigit() and len(row["mccmnc"]) in (5, 6)) or not row["note"].strip():
            raise ValueError(f"{path.name}: {row['mccmnc']!r} needs a 5- or 6-digit mccmnc and a note")
    return {row["mccmnc"]: row for row in rows}


def render(rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def build() -> tuple[str, list[str]]:
    """networks.csv's text, and the report lines: what was read, added, skipped and overridden."""
    records, skipped = read_wikipedia()
    android, version, tuples = read_android()
    names = {row["mccmnc"]: row["network_name"] for row in read_csv(NAMES_CSV) if row["network_name"]}
    built = build_rows(records, android, names, read_overrides())
    report = [
        f"wikipedia: {WIKIPEDIA_JSON.relative_to(ROOT)}, {len(records)} records with a usable MNC",
        *(
            f"  skipped (no usable MNC): {item.get('mcc')} {item.get('mnc')!r} "
            f"{item.get('brand') or item.get('operator')}"
            for item in skipped
        ),
        f"android: {ANDROID_TEXTPB.relative_to(ROOT)} version {version}, {tuples} MCC/MNC tuples, "
        f"{len(android)} named by MCC/MNC alone, {len(built.android_added)} codes Wikipedia lacks added",
        *(f"  android code skipped: {code} {name!r}: {why}" for code, name, why in built.android_skipped),
        f"  {len(built.disagreements)} codes where Android's name shares no word with Wikipedia's "
        "(Wikipedia's kept; the reviewed overrides decide where it matters)",
        f"reviewed overrides: {', '.join(built.overridden)}",
    ]
    unused = sorted(set(names) - {row["mccmnc"] for row in built.rows})
    report += [f"  network_names.csv names {code}, which is not in the registry" for code in unused]
    report.append(f"{len(built.rows)} networks")
    return render(built.rows), report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if the output would change")
    parser.add_argument("--disagreements", action="store_true", help="list codes whose two names disagree")
    args = parser.parse_args(argv)
    text, report = build()
    print("\n".join(report))
    if args.disagreements:
        records, _ = read_wikipedia()
        android, _, _ = read_android()
        built = build_rows(records, android, {}, {})
        for code, wikipedia, android_name in built.disagreements:
            print(f"  {code}: wikipedia {wikipedia!r}, android {android_name!r}")
    if args.check:
        current = NETWORKS_CSV.read_text(encoding="utf-8") if NETWORKS_CSV.exists() else ""
        if current != text:
            print(f"{NETWORKS_CSV.name} is out of date")
            return 1
        return 0
    NETWORKS_CSV.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
