"""ENUM portability end to end: the official client → numlookup → a real NSD answering NAPTR queries.

numlookup runs as a server of its own (``numlookup serve``) with ``kind = "enum"``
sources in its settings file; NSD (``tests/peers/dns.py``) serves the
providers' record shapes on a loopback port, a second NSD refuses, and a
Messente-compatible peer (``tests/peers/messente.py``) stands behind and in
front of ENUM in failover routes. Nothing is mocked.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from messente_api import ApiClient, Configuration, NumberLookupApi, NumbersToInvestigate

from numlookup.accounts import NewCredentials
from numlookup.live import usage
from tests.e2e.conftest import Live, start_live
from tests.e2e.test_live import toml
from tests.peers import dns as zone
from tests.peers.dns import RN_MAP, EnumDns, enum_dns, nsd_binary  # noqa: F401  # fixtures
from tests.peers.messente import Peer
from tests.support import free_port, run_cli

ESTONIA = "+37251000077"  # routed to the refusing ENUM server first, then to the peer
ENUM_COST = "0.001"  # EUR per number asked, what the ENUM provider charges us


@dataclass
class EnumServer:
    live: Live
    dns: EnumDns
    peer: Peer


@pytest.fixture(scope="module")
def enum_server(enum_dns: EnumDns, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EnumServer]:  # noqa: F811  # the fixture parameter shadows its import
    peer = Peer(default_status="true").start()
    dead = Peer(mode="refuse").start()
    upstreams: dict[str, dict[str, object]] = {
        "enum": {
            "kind": "enum",
            "nameservers": [enum_dns.answering.nameserver],
            "rn_map": RN_MAP,
            "timeout": 1.0,
            "cost": ENUM_COST,
            "currency": "EUR",
        },
        "enum-refused": {"kind": "enum", "nameservers": [enum_dns.refusing.nameserver], "timeout": 1.0},
        "peer": {"url": peer.url, "username": "a", "password": "x", "timeout": 1.0},
        "dead": {"url": dead.url, "username": "a", "password": "x", "timeout": 0.5},
    }
    routes = [
        {"match": "cc:372", "sources": ["enum-refused", "peer"]},
        {"match": f"prefix:{zone.DATAFON_PORTED[1:]}", "sources": ["dead", "enum"]},
        {"match": f"prefix:{zone.NO_PARAMETERS[1:]}", "sources": ["enum", "peer"]},
        *({"match": f"cc:{cc}", "source": "enum"} for cc in ("49", "7", "1", "212", "44")),
    ]
    data_dir = tmp_path_factory.mktemp("enum-server")
    config = data_dir / "numlookup.toml"
    config.write_text(
        toml({"live_breaker_failures": 1000, "live_deadline_seconds": 5.0})
        + toml({"live_routes": routes})
        + "".join(f"[upstreams.{name}]\n" + toml(values) for name, values in upstreams.items())
    )
    server = start_live(data_dir, env={"NUMLOOKUP_CONFIG": str(config)})
    try:
        yield EnumServer(live=next(server), dns=enum_dns, peer=peer)
    finally:
        server.close()
        peer.stop()
        dead.stop()


def official(live: Live, creds: NewCredentials) -> NumberLookupApi:
    config = Configuration(username=creds.api_username, password=creds.api_password, host=live.url + "/v1")
    return NumberLookupApi(ApiClient(config))


def lookup(live: Live, creds: NewCredentials, numbers: list[str]) -> list[dict[str, Any]]:
    with live.client(creds) as client:
        response = client.post("/v1/hlr/sync", json={"numbers": numbers})
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()["result"]
    return result


def today_usage(live: Live) -> dict[str, usage.DayUsage]:
    return {row.source: row for row in usage.read(live.engine, datetime.now(UTC).date())}


def test_the_official_client_reads_enum_answers(enum_server: EnumServer) -> None:
    live = enum_server.live
    numbers = [zone.RN_GLOBAL, zone.RN_MAPPED, zone.SIP, zone.SINCH, zone.DATAFON_HOME, zone.NPDI_ONLY, zone.NO_RECORD]
    result = official(live, live.account()).fetch_info(NumbersToInvestigate(numbers=numbers)).result
    by_number = {item.number: item for item in result}
    assert set(by_number) == set(numbers)
    for item in result:  # ENUM never tells reachability or roaming; the source is named
        assert item.status == "UNKNOWN" and item.additional_properties["source"] == "upstream:enum"
        assert not item.roaming and item.roaming_network is None
    ported = {n: by_number[n] for n in (zone.RN_GLOBAL, zone.RN_MAPPED, zone.SIP, zone.SINCH)}
    expected = {zone.RN_GLOBAL: "26202", zone.RN_MAPPED: "25099", zone.SIP: "26203", zone.SINCH: "310012"}
    for number, item in ported.items():
        assert item.ported is True and item.ported_network is not None and item.current_network is not None
        assert item.ported_network.mccmnc == item.current_network.mccmnc == expected[number]
    assert ported[zone.RN_GLOBAL].ported_network.network_name == "Vodafone Deutschland"  # type: ignore[union-attr]  # asserted above
    assert ported[zone.RN_GLOBAL].original_network.mccmnc == "26201"  # type: ignore[union-attr]  # a valid number's range holder
    assert ported[zone.SINCH].ported_network.network_name == "Verizon"  # type: ignore[union-attr]  # asserted above
    for number in (zone.DATAFON_HOME, zone.NPDI_ONLY, zone.NO_RECORD):  # not ported: where its range is
        item = by_number[number]
        assert item.ported is False and item.ported_network is None
        assert item.current_network is not None and item.original_network is not None
        assert item.current_network.mccmnc == item.original_network.mccmnc
    assert by_number[zone.DATAFON_HOME].current_network.mccmnc == "60401"  # type: ignore[union-attr]  # asserted above


def test_enum_answers_are_cached_and_charged_as_live_then_cache(enum_server: EnumServer) -> None:
    live = enum_server.live
    creds = live.account()
    [first] = lookup(live, creds, [zone.RN_NATIONAL])
    assert (first["status"], first["source"], first["ported"]) == ("UNKNOWN", "upstream:enum", True)
    assert first["portedNetwork"]["mccmnc"] == "26203" and first["currentNetwork"]["mccmnc"] == "26203"
    [again] = lookup(live, creds, [zone.RN_NATIONAL])
    assert (again["source"], again["checkedAt"], again["portedNetwork"]) == (
        "cache",
        first["checkedAt"],
        first["portedNetwork"],
    )


def test_an_answer_that_cannot_tell_falls_back_to_the_offline_answer(enum_server: EnumServer) -> None:
    live = enum_server.live
    [item] = lookup(live, live.account(), [zone.NO_PSTN])
    assert (item["status"], item["source"]) == ("UNKNOWN", "offline")
    assert "upstream:enum has no E2U+pstn NAPTR record" in item["error"]
    assert item["currentNetwork"]["mccmnc"] == "26201"  # the prefix-based answer


def test_a_number_enum_cannot_tell_goes_to_the_routes_next_source(enum_server: EnumServer) -> None:
    live = enum_server.live
    before = today_usage(live)
    [item] = lookup(live, live.account(), [zone.NO_PARAMETERS])
    assert (item["status"], item["source"]) == ("ONLINE", "upstream:peer") and "error" not in item
    assert enum_server.peer.requests[-1]["numbers"] == [zone.NO_PARAMETERS]
    after = today_usage(live)
    enum_before = before.get("upstream:enum")
    # ENUM answered (the provider charges for it) without a failure; the peer gave the answer the client pays for.
    assert after["upstream:enum"].queries == (enum_before.queries if enum_before else 0) + 1
    assert after["upstream:enum"].failures == (enum_before.failures if enum_before else 0)


def test_failover_from_a_refusing_enum_server_to_a_messente_peer(enum_server: EnumServer) -> None:
    live = enum_server.live
    before = today_usage(live)
    asked = len(enum_server.peer.requests)
    [item] = lookup(live, live.account(), [ESTONIA])
    assert (item["status"], item["source"]) == ("ONLINE", "upstream:peer") and "error" not in item
    assert len(enum_server.peer.requests) == asked + 1 and enum_server.peer.requests[-1]["numbers"] == [ESTONIA]
    after = today_usage(live)
    refused_before = before.get("upstream:enum-refused")
    assert after["upstream:enum-refused"].failures == (refused_before.failures if refused_before else 0) + 1
    peer_before = before.get("upstream:peer")
    assert after["upstream:peer"].answered == (peer_before.answered if peer_before else 0) + 1


def test_failover_from_a_dead_peer_to_enum_counted_per_source(enum_server: EnumServer) -> None:
    live = enum_server.live
    before = today_usage(live)
    [item] = lookup(live, live.account(), [zone.DATAFON_PORTED])
    assert (item["status"], item["source"], item["ported"]) == ("UNKNOWN", "upstream:enum", True)
    assert item["portedNetwork"]["mccmnc"] == "23430" and item["portedNetwork"]["networkName"] == "EE"
    assert item["originalNetwork"]["mccmnc"] == "23410"  # O2 UK's range
    after = today_usage(live)
    dead, enum = after["upstream:dead"], after["upstream:enum"]
    assert dead.failures == (before["upstream:dead"].failures if "upstream:dead" in before else 0) + 1
    enum_before = before.get("upstream:enum")
    assert enum.answered == (enum_before.answered if enum_before else 0) + 1
    assert enum.queries == (enum_before.queries if enum_before else 0) + 1
    assert enum.currency == "EUR" and enum.cost_micros == enum.answered * 1000  # 0.001 EUR a number answered
    assert enum.credits_micros > (enum_before.credits_micros if enum_before else 0)  # the customer paid for it


@pytest.mark.parametrize(
    ("line", "setting"),
    [
        ('nameservers = ["ns.example.net"]', "upstreams.enum.nameservers"),
        ('nameservers = ["127.0.0.1:5353:53"]', "upstreams.enum.nameservers"),
        ('rn_map = {D2701 = "Beeline"}', "upstreams.enum.rn_map"),
    ],
)
def test_bad_enum_settings_refuse_the_start(tmp_path: Path, line: str, setting: str) -> None:
    config = tmp_path / "numlookup.toml"
    config.write_text(
        'live_routes = [{match = "cc:49", source = "enum"}]\n' + f'[upstreams.enum]\nkind = "enum"\n{line}\n'
    )
    env = {"NUMLOOKUP_CONFIG": str(config)}
    started = run_cli(tmp_path / "data", "serve", "--port", str(free_port()), env=env, check=False)
    assert started.returncode == 1
    assert setting in " ".join(started.stderr.split())  # the message names the setting (however it is wrapped)
