"""Regenerate ``numlookup/numbering/data/networks.csv``, the MCC/MNC network registry.

Source: the npm package ``mcc-mnc-list`` (code MIT; its data is a machine-readable
export of Wikipedia's "Mobile Network Codes" tables, CC BY-SA 4.0). The package is
fetched with ``npm pack mcc-mnc-list@VERSION`` into a temporary directory, or read
from an unpacked copy given with ``--source``.

Usage::

    python scripts/build_registry.py                       # npm pack mcc-mnc-list@1.1.11
    python scripts/build_registry.py --source DIR          # DIR holds mcc-mnc-list.json
    python scripts/build_registry.py --check               # exit 1 if networks.csv would change

Output columns: ``mccmnc,mcc,mnc,country_iso,network_name,brand,operator,status``,
one row per MCC/MNC, sorted by ``mccmnc``:

- every source record whose MNC is a code (2 or 3 digits; placeholders such as
  ``?`` or ranges such as ``100 - 190`` are skipped), whatever its status;
- ``country_iso``: ISO 3166-1 alpha-2 code(s) of the countries the source lists the
  code under, joined with ``/`` (``AU/CC/CX``, ``GB/GG/JE``). The country that owns
  the MCC comes first. Empty for international and test codes (MCC 001, 9xx);
- ``brand``, ``operator``, ``status``: as the source gives them, from the record of
  the MCC's own country when a code is listed under several countries;
- ``network_name``: the reviewed name in ``network_names.csv`` when there is one,
  otherwise the brand, otherwise the operator;
- a code of the previous networks.csv that the source lacks is kept as it was
  (and reported), so a mapping that uses it does not break.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "mcc-mnc-list"
VERSION = "1.1.11"
DATA_DIR = Path(__file__).resolve().parent.parent / "numlookup" / "numbering" / "data"
NETWORKS_CSV = DATA_DIR / "networks.csv"
NAMES_CSV = DATA_DIR / "network_names.csv"
FIELDS = ("mccmnc", "mcc", "mnc", "country_iso", "network_name", "brand", "operator", "status")


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


def fetch_package(workdir: Path) -> Path:
    """``npm pack`` the pinned release into ``workdir``; return the unpacked package directory."""
    subprocess.run(
        ["npm", "pack", f"{PACKAGE}@{VERSION}", "--silent"], cwd=workdir, check=True, stdout=subprocess.DEVNULL
    )
    [tarball] = workdir.glob(f"{PACKAGE}-*.tgz")
    with tarfile.open(tarball) as tar:
        tar.extractall(workdir, filter="data")
    return workdir / "package"


def read_source(package_dir: Path) -> tuple[list[SourceRecord], list[dict[str, object]]]:
    """Source records with a usable MNC, and the raw records that were skipped."""
    raw = json.loads((package_dir / "mcc-mnc-list.json").read_text(encoding="utf-8"))
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


def _split(country: str) -> list[str]:
    return [c for c in country.split("/") if c]


def build_rows(
    records: list[SourceRecord], names: dict[str, str], previous: dict[str, dict[str, str]]
) -> tuple[list[dict[str, str]], list[str]]:
    """Registry rows and the MCC/MNCs kept from ``previous`` because the source lacks them."""
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
            "network_name": names.get(code) or main.brand or main.operator,
            "brand": main.brand,
            "operator": main.operator,
            "status": main.status,
        }

    kept = []
    for code, old in previous.items():
        if code in rows:
            continue
        kept.append(code)
        rows[code] = {
            "mccmnc": code,
            "mcc": old.get("mcc") or code[:3],
            "mnc": old.get("mnc") or code[3:],
            "country_iso": old.get("country_iso", ""),
            "network_name": names.get(code) or old.get("network_name", ""),
            "brand": old.get("brand", ""),
            "operator": old.get("operator", ""),
            "status": old.get("status") or "Unknown",
        }
    return [rows[code] for code in sorted(rows)], sorted(kept)


def read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def render(rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, help=f"an unpacked {PACKAGE} package (default: npm pack {VERSION})")
    parser.add_argument("--output", type=Path, default=NETWORKS_CSV)
    parser.add_argument("--check", action="store_true", help="do not write; exit 1 if the output would change")
    args = parser.parse_args(argv)

    names = {row["mccmnc"]: row["network_name"] for row in read_csv(NAMES_CSV) if row["network_name"]}
    previous = {row["mccmnc"]: row for row in read_csv(args.output)}

    with tempfile.TemporaryDirectory() as tmp:
        package_dir = args.source or fetch_package(Path(tmp))
        meta = json.loads((package_dir / "package.json").read_text(encoding="utf-8"))
        records, skipped = read_source(package_dir)

    rows, kept = build_rows(records, names, previous)
    text = render(rows)
    print(f"source: {meta.get('name')} {meta.get('version')} ({meta.get('license')}), {len(records)} records")
    for item in skipped:
        print(
            f"  skipped (no usable MNC): {item.get('mcc')} {item.get('mnc')!r} "
            f"{item.get('brand') or item.get('operator')}"
        )
    for code in kept:
        print(f"  kept from the previous file (not in the source): {code}")
    unused = sorted(set(names) - {row["mccmnc"] for row in rows})
    for code in unused:
        print(f"  network_names.csv names {code}, which is not in the registry")
    print(f"{len(rows)} networks, {sum(1 for r in rows if r['mccmnc'] in names)} with a reviewed name")

    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            print(f"{args.output.name} is out of date")
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
