"""The shipped data against its sources: known ranges of each source, and outputs rebuilt byte for byte.

Each pin names the source row it comes from (an in-mob-prefix series, an ARCEP block, a
registry record), so a wrong answer points at the data, not at the test. The outputs
(``networks.csv``, ``carrier_networks.csv``, ``blocks.csv``) are rebuilt here from the
vendored inputs under ``data/sources/`` and must equal the committed files.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import re
import sys
from importlib import resources
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from numlookup.numbering import Resolver
from numlookup.numbering.intervals import pad_high, pad_low
from numlookup.numbering.networks import NetworkRegistry
from numlookup.numbering.operator_data import DataNetwork, OperatorData, RangeMap
from numlookup.numbering.provenance import KINDS, shipped_sources

ROOT = Path(__file__).resolve().parents[2]
VENDORED = ROOT / "data" / "sources"
DATA = ROOT / "numlookup" / "numbering" / "data"


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the script runs
    spec.loader.exec_module(module)
    return module


def _rows(path: Path, encoding: str = "utf-8", delimiter: str = ",") -> list[dict[str, str]]:
    with path.open(encoding=encoding, newline="") as fh:
        return list(csv.DictReader(fh, delimiter=delimiter))


@pytest.fixture(scope="module")
def resolver() -> Resolver:
    return Resolver()


def _answer(resolver: Resolver, number: str) -> tuple[str | None, str | None]:
    [r] = resolver.resolve([number])
    assert r.valid and r.number_type == "mobile", number
    assert r.original_network is not None
    return r.original_network.mccmnc, r.original_network.name


# ---------------------------------------------------------------- the registry


@pytest.mark.parametrize(
    ("mccmnc", "source", "name"),
    [
        ("43410", "wikipedia", "HUMANS"),  # UZ, new in the 2024 Wikipedia export
        ("63602", "wikipedia", "Safaricom Ethiopia"),  # ET, new in 2024 (reviewed name)
        ("41866", "wikipedia", "Fastlink"),  # IQ, new in 2024
        ("41750", "android", "Rcell"),  # SY: only Android's table lists it
        ("63725", "android", "Hormuud"),  # SO: Android's second Hormuud code
        ("65002", "reviewed", "Zero2"),  # MW: Wikipedia says Access Communications, Android ZERO2
        ("41880", "reviewed", "ITPC"),  # IQ: in neither; ITU Operational Bulletin No. 1280
    ],
)
def test_new_registry_codes(mccmnc: str, source: str, name: str) -> None:
    record = NetworkRegistry.shipped().records[mccmnc]
    assert (record.source, record.name) == (source, name)


def test_the_registry_reads_wikipedias_2024_export() -> None:
    """Every code of the vendored JSON with a usable MNC is a row, named from its record."""
    import json

    raw = json.loads((VENDORED / "wikipedia-mcc-mnc" / "mcc-mnc-list.json").read_text(encoding="utf-8"))
    codes = {
        r["mcc"] + r["mnc"] for r in raw if (r["mcc"] or "").isdigit() and re.fullmatch(r"\d{2,3}", r["mnc"] or "")
    }
    records = NetworkRegistry.shipped().records
    assert codes <= set(records)
    assert records["43410"].operator == "OOO «HUMANS»" and records["63602"].status == "Operational"


def test_android_names_every_code_it_lists_by_mccmnc_alone() -> None:
    """``android_name`` comes from entries naming a carrier by MCC/MNC only, not from MVNO entries."""
    records = NetworkRegistry.shipped().records
    assert records["26201"].android_name == "Telekom" and records["65002"].android_name == "ZERO2"
    assert records["20801"].android_name == ""  # every Orange France entry is narrowed by SPN or GID1 (MVNOs)


# ---------------------------------------------------------------- decided rows


@pytest.mark.parametrize(
    ("number", "mccmnc"),
    [
        ("+46 70 801 2345", "24006"),  # Telenor Sverige: 240 06 operational, 240 08 not (was left for review)
        ("+251 70 012 3456", "63602"),  # Safaricom Ethiopia
        ("+998 33 123 4567", "43410"),  # HUMANS, NDC 33 (ITU OB 1263)
        ("+265 21 234 5678", "65002"),  # Zero2
        ("+964 731 234 5678", "41880"),  # ITPC
        ("+233 26 123 4567", "62006"),  # AT Ghana, former Airtel prefix (reviewed_ranges.csv)
        ("+233 27 123 4567", "62003"),  # AT Ghana, former Tigo prefix
    ],
)
def test_decided_rows(resolver: Resolver, number: str, mccmnc: str) -> None:
    assert _answer(resolver, number)[0] == mccmnc


# ---------------------------------------------------------------- India: in-mob-prefix series


def _series(series: str) -> tuple[str, str]:
    for name in ("6xxx", "7xxx", "8xxx", "9xxx"):
        for row in _rows(VENDORED / "in-mob-prefix" / f"{name}-in-mob-prefix.csv"):
            if row["series"] == series:
                return row["operator"], row["circle"]
    raise AssertionError(f"series {series} is not in in-mob-prefix")


@pytest.mark.parametrize(
    ("number", "series", "operator", "circle", "mccmnc"),
    [
        ("+91 98200 12345", "9820", "VI", "MU", "40420"),  # Mumbai (metro): Vi Mumbai
        ("+91 98110 12345", "9811", "VI", "DL", "40411"),  # Delhi (metro): Vi Delhi & NCR
        ("+91 99100 12345", "9910", "AT", "DL", "40410"),  # Delhi: Airtel Delhi & NCR
        ("+91 90130 12345", "9013", "CG", "DL", "40468"),  # Delhi: MTNL, not BSNL
        ("+91 70030 12345", "7003", "RJ", "KO", "405873"),  # Kolkata (metro): Jio Kolkata
        ("+91 98300 12345", "9830", "VI", "KO", "40430"),  # Kolkata: Vi Kolkata
        ("+91 98450 12345", "9845", "AT", "KA", "40445"),  # Karnataka: Airtel
        ("+91 90000 12345", "9000", "AT", "AP", "40449"),  # Andhra Pradesh: Airtel
        ("+91 98250 12345", "9825", "VI", "GJ", "40405"),  # Gujarat: Vi
        ("+91 98470 12345", "9847", "VI", "KL", "40446"),  # Kerala: Vi
    ],
)
def test_indian_series(resolver: Resolver, number: str, series: str, operator: str, circle: str, mccmnc: str) -> None:
    assert _series(series) == (operator, circle)
    assert _answer(resolver, number)[0] == mccmnc


def test_an_indian_series_libphonenumber_disagrees_with_is_not_used(resolver: Resolver) -> None:
    """in-mob-prefix lists 9201 as Jio's (Madhya Pradesh); libphonenumber names it Tata Docomo's: no MNC from it."""
    from phonenumbers import carrier, parse

    assert _series("9201") == ("RJ", "MP")
    assert carrier.name_for_number(parse("+919201012345"), "en") == "Tata Docomo"
    assert _answer(resolver, "+91 92010 12345") == (None, "Tata Docomo")


def test_tata_docomo_series_get_airtels_mnc(resolver: Resolver) -> None:
    """9040 (Odisha): in-mob-prefix says Airtel, libphonenumber Tata Docomo, merged into Airtel: Airtel Odisha."""
    assert _series("9040") == ("AT", "OR")
    assert _answer(resolver, "+91 90400 12345")[0] == "40553"


# ---------------------------------------------------------------- France: ARCEP blocks


def _majnum(start: str) -> dict[str, str]:
    rows = _rows(VENDORED / "arcep" / "MAJNUM.csv", "latin-1", ";")
    return next(r for r in rows if r["Tranche_Debut"] == start)


@pytest.mark.parametrize(
    ("number", "start", "mnemo", "territory", "mccmnc"),
    [
        ("+33 6 07 12 34 56", "0607000000", "FRTE", "Métropole", "20801"),  # Orange
        ("+33 6 09 12 34 56", "0609000000", "SFR0", "Métropole", "20810"),  # SFR
        ("+33 6 01 78 12 34", "0601780000", "BOUY", "Métropole", "20820"),  # Bouygues Telecom
        ("+33 6 51 12 34 56", "0651000000", "FRMO", "Métropole", "20815"),  # Free Mobile
        ("+262 639 01 23 45", "0639010000", "FRTE", "Mayotte", "64700"),  # Orange, Mayotte
        ("+262 639 10 12 34", "0639100000", "SRR", "Mayotte", "64710"),  # SFR Réunion, Mayotte
        ("+596 696 00 12 34", "0696000000", "OUTR", "Martinique", "34002"),  # Outremer Telecom
    ],
)
def test_french_blocks(resolver: Resolver, number: str, start: str, mnemo: str, territory: str, mccmnc: str) -> None:
    row = _majnum(start)
    assert (row["Mnémo"], row["Territoire"]) == (mnemo, territory)
    assert _answer(resolver, number)[0] == mccmnc


def test_a_block_beats_the_prefix_and_an_import_beats_the_block(resolver: Resolver) -> None:
    """0601 63 is La Poste Telecom's (ARCEP, no MNC); libphonenumber names its prefix SFR."""
    from phonenumbers import carrier, parse

    assert _majnum("0601630000")["Mnémo"] == "LPTL"
    assert carrier.name_for_number(parse("+33601630123"), "en") == "SFR"
    assert _answer(resolver, "+33 6 01 63 01 23") == (None, "LPTL")
    imported = RangeMap.compile(
        np.array([[pad_low("336016301"), pad_high("336016301"), 0]], dtype=np.int64),
        np.array([0], dtype=np.int32),
        [DataNetwork("20810", "SFR (imported)")],
    )
    with_import = Resolver(operator=OperatorData(ranges=imported), plan=resolver.plan)
    [r] = with_import.resolve(["+33601630123"])
    assert r.original_network is not None and r.original_network.mccmnc == "20810"


# ---------------------------------------------------------------- rebuilt byte for byte, and listed


def test_outputs_are_rebuilt_byte_for_byte_from_the_vendored_inputs() -> None:
    registry_text, _ = _script("build_registry").build()
    assert registry_text == (DATA / "networks.csv").read_text(encoding="utf-8")
    blocks_text, report = _script("build_blocks").build()
    assert blocks_text == (DATA / "blocks.csv").read_text(encoding="utf-8")
    assert report[0].startswith("in-mob-prefix: 1703 series")
    carriers = _script("map_carriers")
    decisions = carriers.decide_all(carriers.carrier_numbers(), carriers.load_networks(), carriers.load_overrides())
    assert carriers.render(decisions) == (DATA / "carrier_networks.csv").read_text(encoding="utf-8")


def test_every_vendored_file_matches_its_checksum() -> None:
    folders = sorted(p for p in VENDORED.iterdir() if p.is_dir())
    assert [p.name for p in folders] == ["android-carrier-id", "arcep", "in-mob-prefix", "wikipedia-mcc-mnc"]
    for folder in folders:
        listed = dict(
            (name, digest)
            for digest, name in re.findall(r"^ {4}([0-9a-f]{64})  (\S+)$", (folder / "SOURCE.md").read_text(), re.M)
        )
        files = {p.name for p in folder.iterdir()} - {"SOURCE.md"}
        assert set(listed) == files, folder.name
        for name, digest in listed.items():
            assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, f"{folder.name}/{name}"


def test_every_shipped_table_and_vendored_input_has_a_listed_source() -> None:
    sources = shipped_sources()
    assert all(s.kind in KINDS and s.licence and s.attribution for s in sources)
    fed = {name for s in sources for name in s.outputs}
    shipped = {p.name for p in DATA.glob("*.csv")} - {"sources.csv"}
    assert shipped == fed
    assert {s.inputs for s in sources if s.inputs} == {
        f"data/sources/{p.name}" for p in VENDORED.iterdir() if p.is_dir()
    }
    provenance = (DATA / "PROVENANCE.md").read_text(encoding="utf-8")
    notice = (ROOT / "NOTICE").read_text(encoding="utf-8")
    for s in sources:
        if len(s.version) == 40:  # a commit: PROVENANCE.md records it, NOTICE attributes the source
            assert s.version in provenance, s.id
    for name in ("Apache", "CC BY-SA", "CC0", "Licence Ouverte", "Android Open Source Project", "Arcep"):
        assert name in notice


def test_reviewed_tables_say_why() -> None:
    for name in ("registry_overrides.csv", "india_circle_mncs.csv", "arcep_operators.csv", "reviewed_ranges.csv"):
        raw = (resources.files("numlookup.numbering") / "data" / name).open("rb")
        with io.TextIOWrapper(raw, encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        assert rows and all(r["note"].strip() for r in rows), name
