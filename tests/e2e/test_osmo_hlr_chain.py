"""A real osmo-hlr behind numlookup B, and B as the upstream of numlookup A.

Subscribers are provisioned over osmo-hlr's VTY and attached by a test VLR over
GSUP, exactly as an MSC/VLR would; B asks osmo-hlr over CTRL; A asks B over HTTP
with its own credentials. The official client reads A's answers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from messente_api import ApiClient, Configuration, NumberLookupApi, NumbersToInvestigate

from numlookup.accounts import NewCredentials
from tests.e2e.conftest import Live, start_live
from tests.peers.osmo_hlr import OsmoHlr, osmo_hlr, osmo_hlr_binary  # noqa: F401  # fixtures

# Vodafone Germany (26202) numbers served by the test HLR.
HOME = "+491720000101"  # attached to a VLR whose global title is in its own network
ABROAD = "+491720000102"  # attached to a VLR whose global title is an Estonian Telia number
NAMED = "+491720000103"  # attached to a VLR known by name only, mapped to Elisa Eesti
DETACHED = "+491720000104"  # provisioned, never attached
BARRED = "+491720000105"  # attached, then network access withdrawn
UNKNOWN = "+491720000199"  # not provisioned
ROUTE = [{"match": "prefix:4917200001", "source": "osmo-hlr"}]


@dataclass
class HlrChain:
    hlr: OsmoHlr
    a: Live
    b: Live


@pytest.fixture(scope="module")
def hlr_chain(osmo_hlr: OsmoHlr, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HlrChain]:  # noqa: F811  # the fixture parameter shadows its import
    for i, (number, vlr) in enumerate(
        [
            (HOME, "491720000001"),
            (ABROAD, "37250000001"),
            (NAMED, "vlr-tallinn"),
            (DETACHED, None),
            (BARRED, "491720000001"),
        ]
    ):
        imsi = f"26202000000{i + 101:04d}"
        osmo_hlr.create_subscriber(imsi, number.lstrip("+"))
        if vlr is not None:
            osmo_hlr.attach(imsi, vlr)
        if number == BARRED:
            osmo_hlr.set_network_access_mode(imsi, "none")
    b_env = {
        "NUMLOOKUP_OSMO_HLR": json.dumps(
            {"host": osmo_hlr.address, "port": osmo_hlr.ctrl_port, "vlr_map": {"vlr-tallinn": "24802"}}
        ),
        "NUMLOOKUP_LIVE_ROUTES": json.dumps(ROUTE),
    }
    b_gen = start_live(tmp_path_factory.mktemp("hlr-b"), env=b_env)
    b = next(b_gen)
    a_at_b = b.account(credits="100", status_style="onoff")
    a_env = {
        "NUMLOOKUP_UPSTREAMS": json.dumps(
            {"b": {"url": b.url + "/v1", "username": a_at_b.api_username, "password": a_at_b.api_password}}
        ),
        "NUMLOOKUP_LIVE_ROUTES": json.dumps([{"match": "prefix:4917200001", "source": "upstream:b"}]),
    }
    a_gen = start_live(tmp_path_factory.mktemp("hlr-a"), env=a_env)
    a = next(a_gen)
    try:
        yield HlrChain(hlr=osmo_hlr, a=a, b=b)
    finally:
        for gen in (a_gen, b_gen):
            gen.close()


def lookup(live: Live, creds: NewCredentials, numbers: list[str]) -> dict[str, dict[str, Any]]:
    with live.client(creds) as client:
        response = client.post("/v1/hlr/sync", json={"numbers": numbers, "max_age": 0})
    assert response.status_code == 200, response.text
    return {item["number"]: item for item in response.json()["result"]}


def test_osmo_hlr_answers_through_b(hlr_chain: HlrChain) -> None:
    creds = hlr_chain.b.account(status_style="seed")
    got = lookup(hlr_chain.b, creds, [HOME, ABROAD, NAMED, DETACHED, BARRED, UNKNOWN])
    assert {n: (r["status"], r["roaming"], r["source"]) for n, r in got.items()} == {
        HOME: ("ONLINE", False, "osmo-hlr"),
        ABROAD: ("ONLINE", True, "osmo-hlr"),
        NAMED: ("ONLINE", True, "osmo-hlr"),
        DETACHED: ("OFFLINE", None, "osmo-hlr"),
        BARRED: ("OFFLINE", None, "osmo-hlr"),
        UNKNOWN: ("OFFLINE", None, "osmo-hlr"),
    }
    assert got[HOME]["roamingNetwork"] is None
    assert got[HOME]["currentNetwork"]["mccmnc"] == "26202"
    abroad = got[ABROAD]["roamingNetwork"]
    assert abroad["countryCode"] == "EST" and abroad["mccmnc"] == "24801"
    assert got[NAMED]["roamingNetwork"]["mccmnc"] == "24802"
    assert got[UNKNOWN]["error"] == "Unknown Subscriber"
    assert "error" not in got[HOME]


def test_a_reaches_osmo_hlr_through_b_and_the_official_client_reads_it(hlr_chain: HlrChain) -> None:
    creds = hlr_chain.a.account(status_style="truefalse")
    api = NumberLookupApi(
        ApiClient(Configuration(username=creds.api_username, password=creds.api_password, host=hlr_chain.a.url + "/v1"))
    )
    result = api.fetch_info(NumbersToInvestigate(numbers=[HOME, ABROAD, DETACHED, UNKNOWN])).result
    by_number = {r.number: r for r in result}
    assert by_number[HOME].status == "true" and by_number[HOME].roaming is False
    assert by_number[ABROAD].status == "true" and by_number[ABROAD].roaming is True
    roaming_network = by_number[ABROAD].roaming_network
    assert roaming_network is not None and roaming_network.country_code == "EST"
    assert by_number[DETACHED].status == "false"
    assert by_number[UNKNOWN].status == "false"
    raw = lookup(hlr_chain.a, creds, [HOME])
    assert raw[HOME]["source"] == "upstream:b"


def test_attach_and_detach_are_seen_live(hlr_chain: HlrChain) -> None:
    creds = hlr_chain.b.account()
    imsi = "262020000000120"
    number = "+491720000120"
    hlr_chain.hlr.create_subscriber(imsi, number.lstrip("+"))
    assert lookup(hlr_chain.b, creds, [number])[number]["status"] == "OFFLINE"
    hlr_chain.hlr.attach(imsi, "491720000001")
    assert lookup(hlr_chain.b, creds, [number])[number]["status"] == "ONLINE"
    hlr_chain.hlr.set_network_access_mode(imsi, "none")
    assert lookup(hlr_chain.b, creds, [number])[number]["status"] == "OFFLINE"
