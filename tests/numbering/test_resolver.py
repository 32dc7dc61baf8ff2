"""Resolution pinned on known ranges; libphonenumber is the reference for validity."""

from __future__ import annotations

import numpy as np
import phonenumbers
import pytest

from numlookup.numbering import InvalidReason, Resolver, international_form
from numlookup.numbering.countries import country_for, country_for_region
from numlookup.numbering.operator_data import DataNetwork, OperatorData, PortedMap


@pytest.fixture(scope="module")
def resolver() -> Resolver:
    return Resolver()


@pytest.mark.parametrize(
    ("number", "mccmnc", "name"),
    [
        ("+37251000001", "24801", "Telia Eesti"),
        ("+37256123456", "24802", "Elisa Eesti"),
        ("+3725512345", "24803", "Tele2 Eesti"),
        ("+358501234567", "24405", "Elisa"),
        ("+358401234567", "24491", "Telia Finland"),
        ("+4915112345678", "26201", "Telekom Deutschland"),
        ("+4917612345678", "26203", "O2 Deutschland"),
        ("+447712345678", "23410", "O2 UK"),
        ("+447400123456", "23420", "Three UK"),
        ("+2348031234567", "62130", "MTN Nigeria"),
        ("+2348021234567", "62120", "Airtel Nigeria"),
        ("+254712345678", "63902", "Safaricom"),
        ("+254733123456", "63903", "Airtel Kenya"),
        ("+27821234567", "65501", "Vodacom"),
        ("+27831234567", "65510", "MTN South Africa"),
    ],
)
def test_known_mobile_ranges_have_their_mccmnc(resolver: Resolver, number: str, mccmnc: str, name: str) -> None:
    [resolution] = resolver.resolve([number])
    assert resolution.valid and resolution.number_type == "mobile"
    assert resolution.original_network is not None
    assert (resolution.original_network.mccmnc, resolution.original_network.name) == (mccmnc, name)
    assert resolution.current_network == resolution.original_network
    assert resolution.ported is None  # no porting data: nobody knows


def test_unmapped_carrier_keeps_its_name(resolver: Resolver) -> None:
    """Andrews & Arnold holds UK mobile ranges but no MNC of its own (reviewed in carrier_overrides.csv)."""
    [uk] = resolver.resolve(["+447441123456"])
    assert uk.original_network is not None
    assert uk.original_network.mccmnc is None and uk.original_network.name == "Andrews & Arnold"
    [china] = resolver.resolve(["+8613812345678"])
    assert china.original_network is not None and china.original_network.mccmnc == "46000"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("hello", InvalidReason.NOT_A_NUMBER),
        ("+999123456789", InvalidReason.INVALID_COUNTRY_CODE),
        ("+3725", InvalidReason.TOO_SHORT),
        ("+3725100000111111111", InvalidReason.TOO_LONG),
        ("+3725812345", InvalidReason.INVALID_FOR_REGION),
        ("", InvalidReason.NOT_A_NUMBER),
    ],
)
def test_invalid_numbers_carry_a_reason(resolver: Resolver, raw: str, reason: InvalidReason) -> None:
    [resolution] = resolver.resolve([raw])
    assert not resolution.valid and resolution.reason == reason
    assert resolution.original_network is None and resolution.current_network is None
    assert reason.description


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+37251000001", "+37251000001"),
        ("37251000001", "+37251000001"),
        ("0037251000001", "+37251000001"),
        (" +372 5100 0001 ", "+37251000001"),
        ("+372-5100-0001", "+37251000001"),
        ("(372) 5100.0001", "+37251000001"),
        ("call me", "call me"),
    ],
)
def test_international_form(raw: str, expected: str) -> None:
    assert international_form(raw) == expected


def test_batch_keeps_order_and_resolves_repeats_once(resolver: Resolver) -> None:
    results = resolver.resolve(["+37251000001", "x", "+37251000001"])
    assert [r.input for r in results] == ["+37251000001", "x", "+37251000001"]
    assert results[0] is results[2]


def test_validity_agrees_with_libphonenumber_on_a_sample(resolver: Resolver) -> None:
    """A small cross-check over every region's example numbers and their near misses."""
    inputs: list[str] = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        example = phonenumbers.example_number_for_type(region, phonenumbers.PhoneNumberType.MOBILE)
        if example is None:
            continue
        e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
        inputs += [e164, e164[:-1], e164 + "9", e164[:-2] + "00"]
    assert len(inputs) > 800
    for raw, resolution in zip(inputs, resolver.resolve(inputs), strict=True):
        assert resolution.valid == phonenumbers.is_valid_number(phonenumbers.parse(raw)), raw
        if resolution.valid:
            assert resolution.country is not None
            assert resolution.country.region == phonenumbers.region_code_for_number(phonenumbers.parse(raw))


def test_country_names_and_alpha3() -> None:
    assert country_for_region("KR").name == "South Korea" and country_for_region("KR").alpha3 == "KOR"
    assert country_for_region("GB").alpha3 == "GBR" and country_for_region("GB").calling_code == "44"
    assert country_for_region("XK").alpha3 == "XKX"
    assert country_for("001", 800).alpha3 == "XXX" and country_for("001", 800).calling_code == "800"
    for region in phonenumbers.SUPPORTED_REGIONS:
        country = country_for_region(region)
        assert len(country.alpha3) == 3 and country.alpha3.isupper() and country.name


def ported_map(numbers: dict[int, str]) -> PortedMap:
    networks = sorted(set(numbers.values()))
    keys = np.array(list(numbers), dtype=np.int64)
    values = np.array([networks.index(m) for m in numbers.values()], dtype=np.uint16)
    return PortedMap.build(keys, values, [DataNetwork(m) for m in networks])


def test_ported_map_covers_the_calling_codes_it_holds_numbers_of() -> None:
    table = ported_map({37251000002: "24802", 4915112345678: "26203", 447712345678123: "23420"})
    assert [table.covers(c) for c in ("372", "49", "44", "371", "1", "7", "358")] == [True] * 3 + [False] * 4
    assert not ported_map({}).covers("372")


def test_ported_is_known_only_where_porting_data_covers_the_country() -> None:
    """A ported-number file lists who moved: not being in it means "not ported" only in the countries it covers."""
    resolver = Resolver(operator=OperatorData(ported=ported_map({37251000002: "24802", 12025550199: "310260"})))
    numbers = ["+37251000001", "+37251000002", "+37120012345", "+12025550123", "+4915112345678", "hello"]
    stayed, moved, latvia, usa, germany, invalid = resolver.resolve(numbers)
    assert (stayed.ported, moved.ported, usa.ported) == (False, True, False)
    assert moved.ported_network is not None and moved.ported_network.mccmnc == "24802"
    assert latvia.valid and germany.valid and (latvia.ported, germany.ported, invalid.ported) == (None, None, None)
    columns = resolver.resolve_columns(numbers)
    assert columns.porting_known.tolist() == [True, True, False, True, False, False]


def test_every_regions_country_has_the_calling_code_phonenumbers_gives_it(resolver: Resolver) -> None:
    """The resolver reads a valid number's calling code from the plan's table; phonenumbers asks the region's."""
    numbers = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                numbers.append(phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164))
    results = resolver.resolve(numbers)
    valid = [r for r in results if r.valid]
    assert len(valid) > 400
    for result in valid:
        assert result.country is not None and result.e164 is not None
        where = phonenumbers.region_code_for_number(phonenumbers.parse(result.e164))
        assert where is not None
        assert result.country.calling_code == str(phonenumbers.country_code_for_region(where)), result.e164


@pytest.mark.parametrize(
    ("spread", "offset"),
    [(1_000_003, 0), (1, 0), (1, -17), (3, 10**12)],  # a sort; a table over the span, from any lowest key
)
def test_group_gives_np_uniques_codes_and_a_key_of_each(spread: int, offset: int) -> None:
    from numlookup.numbering.interning import group

    rng = np.random.default_rng(7)
    for size in (0, 1, 2, 5_000):
        keys = rng.integers(0, 40, size).astype(np.int64) * spread + offset
        codes, one = group(keys)
        uniques, inverse = np.unique(keys, return_inverse=True)
        assert codes.tolist() == inverse.ravel().tolist()
        assert keys[one].tolist() == uniques.tolist()
