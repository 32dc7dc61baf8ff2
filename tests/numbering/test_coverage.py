"""The shipped registry, the carrier map and how much of libphonenumber's carrier data they cover.

The issue's targets are 95% of carrier prefixes worldwide (weighted by the numbers
each covers) and 100% in each TOP_40 region. The shipped data does not reach them
yet; these tests pin the figures actually reached so that a regression fails and an
improvement is noticed (raise the floors when you add overrides):

- India: MNCs are assigned per licence area and the map is keyed by carrier name only,
  so no Indian name has a single honest MNC (~8.4% of the world weight). Left
  unmapped, India alone keeps the world share below 92%, so 95% is out of reach.
- Elsewhere: MVNOs and service providers without an MNC of their own, withdrawn codes,
  operators or services missing from the registry source (e.g. Safaricom Ethiopia,
  Iraq's ITPC, ERA-GLONASS), closed networks that never had a code there (Pakistan's
  Instaphone), and names where the right MNC could not be told (e.g. Ghana's "at",
  Morocco's Al Hourria Telecom); each has a reviewed override row or no row at all and
  is listed by the coverage report.
"""

from __future__ import annotations

import csv
import io
from importlib import resources

import phonenumbers
import pytest
from phonenumbers import carrier

from numlookup.cli.data import coverage_json, coverage_table
from numlookup.numbering import Resolver
from numlookup.numbering.coverage import TOP_40, CoverageReport, carrier_numbers, coverage
from numlookup.numbering.networks import NetworkRegistry

# Floors: the weighted share reached per TOP_40 region, rounded down. Regions not listed are at 100%.
TOP_40_BELOW_TARGET: dict[str, float] = {
    "IN": 0.0,
    "RU": 0.81,
    "NG": 0.746,
    "PK": 0.875,
    "TH": 0.966,
    "DE": 0.978,
    "TR": 0.995,
    "CO": 0.991,
    "FR": 0.955,
    "GB": 0.981,
    "ET": 0.666,
    "ES": 0.952,
    "MA": 0.998,
    "PL": 0.998,
    "UA": 0.947,
    "CD": 0.937,
    "SA": 0.951,
    "MY": 0.986,
    "IQ": 0.823,
    "PE": 0.988,
    "GH": 0.666,
    "UG": 0.933,
}
WORLD_FLOOR = 0.865  # target 0.95
TOP_40_FLOOR = 0.854


@pytest.fixture(scope="module")
def networks() -> NetworkRegistry:
    return NetworkRegistry.shipped()


@pytest.fixture(scope="module")
def report(networks: NetworkRegistry) -> CoverageReport:
    return coverage(networks)


def test_top_40_regions_all_have_carrier_data() -> None:
    names = carrier_numbers()
    assert len(TOP_40) == len(set(TOP_40)) == 40
    assert all(names.get(region) for region in TOP_40)


def test_world_coverage(report: CoverageReport) -> None:
    assert report.share >= WORLD_FLOOR
    assert report.select(TOP_40).share >= TOP_40_FLOOR
    assert 0 < report.mapped_prefixes <= report.prefixes and report.mapped_numbers <= report.numbers


@pytest.mark.parametrize("region", TOP_40)
def test_top_40_region_coverage(report: CoverageReport, region: str) -> None:
    found = report.region(region)
    assert found is not None and found.prefixes > 0
    floor = TOP_40_BELOW_TARGET.get(region)
    if floor is None:
        assert found.share == 1.0 and found.unmapped == ()
    else:
        assert found.share >= floor
        assert found.unmapped


def test_report_lists_unmapped_names(report: CoverageReport) -> None:
    india = report.region("IN")
    assert india is not None and india.share == 0.0 and len(india.unmapped) >= 6
    china = report.region("CN")
    assert china is not None and china.share == 1.0
    estonia = report.region("EE")
    assert estonia is not None and estonia.share == 1.0


def test_json_and_table(report: CoverageReport) -> None:
    data = coverage_json(report)
    assert data["total"]["share"] == round(report.share, 6)
    assert len(data["top_40"]["regions"]) == 40
    ee = next(r for r in data["regions"] if r["region"] == "EE")
    assert ee["share"] == 1.0 and ee["unmapped"] == [] and ee["top_40"] is False
    table = coverage_table(report.select(["EE", "CN"]))
    assert table.row_count >= 3


def _csv(name: str) -> list[dict[str, str]]:
    raw = (resources.files("numlookup.numbering") / "data" / name).open("rb")
    with io.TextIOWrapper(raw, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_registry_shape_and_reviewed_names(networks: NetworkRegistry) -> None:
    rows = _csv("networks.csv")
    assert list(rows[0]) == ["mccmnc", "mcc", "mnc", "country_iso", "network_name", "brand", "operator", "status"]
    assert len(rows) > 2500 and len({r["mccmnc"] for r in rows}) == len(rows)
    assert all(r["mccmnc"] == r["mcc"] + r["mnc"] and r["status"] for r in rows)
    records = networks.records
    assert records["24801"].name == "Telia Eesti" and records["24801"].countries == ("EE",)
    assert records["23415"].name == "Vodafone UK"
    assert records["26201"].name == "Telekom Deutschland" and records["26201"].status == "Operational"
    assert set(records["23455"].countries) >= {"GG", "JE"}
    for row in _csv("network_names.csv"):
        assert records[row["mccmnc"]].name == row["network_name"]


def test_carrier_map_notes_say_where_each_row_came_from() -> None:
    overrides = {(r["region"], r["carrier_name"]): r for r in _csv("carrier_overrides.csv")}
    for row in _csv("carrier_networks.csv"):
        key = (row["region"], row["carrier_name"])
        if key in overrides:
            assert row["mccmnc"] == overrides[key]["mccmnc"] and row["note"].startswith("override")
        else:
            assert row["mccmnc"] and row["note"].startswith("rule: ")
    assert all(r["mccmnc"] or r["note"] for r in overrides.values())


@pytest.mark.parametrize(
    ("number", "mccmnc", "name"),
    [
        ("+372 5100 0001", "24801", "Telia Eesti"),  # Estonia, Telia
        ("+358 50 123 4567", "24405", "Elisa"),  # Finland, Elisa
        ("+49 151 1234 5678", "26201", "Telekom Deutschland"),  # Germany, Telekom
        ("+234 803 123 4567", "62130", "MTN Nigeria"),  # Nigeria, MTN
        ("+86 186 1234 5678", "46001", "China Unicom"),
        ("+62 812 3456 7890", "51010", "Telkomsel"),
        ("+81 80 1234 5678", "44010", "NTT docomo"),
        ("+7 903 123 4567", "25099", "Beeline"),
        ("+7 926 123 4567", "25002", "MegaFon"),
        ("+92 300 1234567", "41001", "Jazz"),
        ("+880 1712 345678", "47001", "Grameenphone"),
        ("+84 91 234 5678", "45202", "Vinaphone"),
        ("+63 917 123 4567", "51502", "Globe"),
        ("+20 100 123 4567", "60202", "Vodafone Egypt"),
        ("+90 532 123 4567", "28601", "Turkcell"),
        ("+48 501 234 567", "26003", "Orange Polska"),
        ("+60 12 345 6789", "50212", "Maxis"),
        ("+233 24 123 4567", "62001", "MTN Ghana"),
        ("+256 772 123456", "64110", "MTN Uganda"),
        ("+255 754 123 456", "64004", "Vodacom Tanzania"),
        ("+44 7781 123456", "23455", "Sure Channel Islands"),  # +44 shared: Guernsey
        ("+44 7624 123456", "23458", "Manx Telecom (Pronto GSM)"),  # +44 shared: Isle of Man
    ],
)
def test_more_known_ranges(number: str, mccmnc: str, name: str) -> None:
    [resolution] = Resolver().resolve([number])
    assert resolution.valid and resolution.number_type == "mobile"
    assert resolution.original_network is not None
    assert (resolution.original_network.mccmnc, resolution.original_network.name) == (mccmnc, name)


def test_portability_regions_still_return_the_range_holder() -> None:
    """libphonenumber's safe_display_name withholds names where numbers are portable; we do not."""
    number = phonenumbers.parse("+4915112345678")
    assert carrier.safe_display_name(number, "en") == ""
    [resolution] = Resolver().resolve(["+4915112345678"])
    assert resolution.original_network is not None and resolution.original_network.mccmnc == "26201"
