"""A result object's fields, by name, for the answers the offline path builds positionally (results.py)."""

from __future__ import annotations

import gc

import msgspec
import numpy as np
import pytest

from numlookup.numbering import Resolver
from numlookup.numbering.models import Network, Resolution
from numlookup.numbering.operator_data import DataNetwork, OperatorData, PortedMap
from numlookup.results import MobileNetwork, number_result, offline_results
from numlookup.status import STATUS_STYLES, StatusStyle

CHECKED_AT = "2026-12-06T10:15:30.123Z"


def _network(network: Network | None) -> dict[str, object] | None:
    if network is None:
        return None
    return {
        "mccmnc": network.mccmnc,
        "networkName": network.name,
        "countryName": network.country.name,
        "countryPrefix": network.country.calling_code,
        "countryCode": network.country.alpha3,
    }


def _expected(resolution: Resolution) -> dict[str, object]:
    """The wire contract's fields of an offline answer, spelled out from the resolution."""
    if not resolution.valid:
        assert resolution.reason is not None
        return {
            "number": resolution.e164 or resolution.input,
            "status": "INVALID",
            **dict.fromkeys(("ported", "roaming", "currentNetwork", "originalNetwork", "portedNetwork")),
            "roamingNetwork": None,
            "checkedAt": CHECKED_AT,
            "source": "offline",
            "error": resolution.reason.description,
        }
    return {
        "number": resolution.e164,
        "status": "UNKNOWN",
        "ported": resolution.ported,
        "roaming": None,
        "currentNetwork": _network(resolution.current_network),
        "originalNetwork": _network(resolution.original_network),
        "portedNetwork": _network(resolution.ported_network),
        "roamingNetwork": None,
        "checkedAt": CHECKED_AT,
        "source": "offline",
    }


@pytest.mark.parametrize("style", STATUS_STYLES)
def test_offline_answers_hold_each_field_where_the_contract_names_it(style: StatusStyle) -> None:
    ported = PortedMap.build(
        np.array([37251000002], dtype=np.int64), np.array([0], dtype=np.uint16), [DataNetwork("24802", "Elisa")]
    )
    resolver = Resolver(operator=OperatorData(ported=ported))
    numbers = ["+37251000001", "+37251000002", "+4915112345678", "hello", "+999123", "+80012345678"]
    resolutions = resolver.resolve(numbers)
    assert [r.ported for r in resolutions[:3]] == [False, True, None]  # unported, ported, not covered
    for resolution in resolutions:
        encoded = msgspec.json.encode(number_result(resolution, style, CHECKED_AT))
        assert msgspec.json.decode(encoded) == _expected(resolution), resolution.input


@pytest.mark.parametrize("style", STATUS_STYLES)
def test_offline_results_are_number_result_item_by_item(style: StatusStyle) -> None:
    """The offline answer's one loop builds what ``number_result`` builds for each, and counts the invalid."""
    ported = PortedMap.build(
        np.array([37251000002], dtype=np.int64), np.array([0], dtype=np.uint16), [DataNetwork("24802", "Elisa")]
    )
    covered = Resolver(operator=OperatorData(ported=ported))
    numbers = ["+37251000001", "+37251000002", "+4915112345678", "hello", "+999123", "+80012345678", "+37251000001"]
    assert [r.ported for r in covered.resolve(numbers)[:3]] == [False, True, None]  # each branch of the loop
    for resolver in (covered, Resolver()):
        resolutions = resolver.resolve(numbers)
        made, invalid = offline_results(resolutions, style, CHECKED_AT)
        assert made == [number_result(r, style, CHECKED_AT) for r in resolutions]
        assert invalid == sum(1 for r in resolutions if not r.valid) == 2
    assert offline_results([], style, CHECKED_AT) == ([], 0)


def test_result_objects_are_left_out_of_the_garbage_collector_and_can_be() -> None:
    """``gc=False`` is safe: every field holds an atom or another such result object, none a container.

    A field that could hold a container (a list, a dict) could close a reference
    cycle the collector, told to leave these objects alone, would never free:
    this fails if one is added.
    """
    resolutions = Resolver().resolve(["+37251000001", "+4915112345678", "hello", "+999123"])
    for resolution in resolutions:
        result = number_result(resolution, "seed", CHECKED_AT)
        assert not gc.is_tracked(result)
        for name in result.__struct_fields__:
            value = getattr(result, name)
            assert value is None or value is msgspec.UNSET or isinstance(value, str | bool | MobileNetwork), name
            if isinstance(value, MobileNetwork):
                assert not gc.is_tracked(value)
                assert all(v is None or isinstance(v, str) for v in msgspec.structs.astuple(value)), name
