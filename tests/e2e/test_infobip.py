"""Infobip end to end: clients → numlookup (``numlookup serve``) → a real Infobip peer on 127.0.0.1.

numlookup runs as a server of its own with ``kind = "infobip"`` sources in its
settings file (the API key from an environment variable for one, inline for
the others); the peer (``tests/peers/infobip.py``) answers with Infobip's
published examples, rate-limits, or refuses our key; Messente-compatible peers
stand in front of and behind Infobip in failover routes. Nothing is mocked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from messente_api import ApiClient, Configuration, NumberLookupApi, NumbersToInvestigate
from sqlalchemy import select

from numlookup.accounts import NewCredentials
from numlookup.settings import SettingsError, load_settings
from numlookup.store.tables import source_usage
from tests.e2e.conftest import Live, start_live
from tests.live_config import write_config
from tests.peers.infobip import InfobipPeer
from tests.peers.messente import Peer
from tests.support import free_port, metric, run_cli

SECRET = "003026bbc133714df1834b8638bb496e-never-shown"  # our Infobip API key
KEY_VARIABLE = "NUMLOOKUP_TEST_INFOBIP_API_KEY"
COST = Decimal("0.005")  # EUR per number, what Infobip charges us
PRICE_LIVE = Decimal("0.05")
RETRY_AFTER = 5  # seconds the rate-limited Infobip asks for
# Swiss numbers (a Swisscom range, 22801, like the examples' 41793026727) → the Infobip answer they get.
SWISS = {
    "+41793026727": "normal",
    "+41793026728": "ported",
    "+41793026729": "roaming",
    "+41793026730": "absent",
    "+41793026731": "unknown_subscriber",
    "+41793026732": "pending",
    "+41793026733": "ported_sunrise_sim",
}
OFFICIAL = {  # the same answers for the official client, on numbers not asked before (no cache)
    "+41793026747": "normal",
    "+41793026748": "ported",
    "+41793026749": "roaming",
    "+41793026750": "absent",
    "+41793026751": "unknown_subscriber",
}
COUNTS = ("queries", "numbers", "answered", "failures", "cost_micros", "credits_micros")
EE, SE, DK, DE, FI = "+37251000001", "+46701234567", "+4520123456", "+4915112345678", "+358401234567"


@dataclass
class InfobipServer:
    live: Live
    infobip: InfobipPeer
    limited: InfobipPeer
    other_key: InfobipPeer
    broken: InfobipPeer  # its mode is changed by the test that makes it fail each way
    peer: Peer
    dead: Peer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfobipServer]:
    infobip = InfobipPeer(api_key=SECRET, answers={**SWISS, **OFFICIAL, DE: "no_status"}).start()
    limited = InfobipPeer(api_key=SECRET, mode="http429", retry_after=RETRY_AFTER).start()
    other_key = InfobipPeer(api_key="a-key-that-is-not-ours").start()
    broken = InfobipPeer(api_key=SECRET).start()
    peer = Peer(default_status="ONLINE").start()
    dead = Peer(mode="refuse").start()
    folder = tmp_path_factory.mktemp("infobip-server")
    config = write_config(
        folder / "numlookup.toml",
        routes=[
            {"match": "prefix:417930267", "source": "infobip"},
            {"match": "cc:372", "sources": ["dead", "infobip"]},  # a dead Messente peer, then Infobip
            {"match": "cc:46", "sources": ["infobip-limited", "peer"]},  # 429, then the Messente peer
            {"match": "cc:45", "sources": ["infobip-other-key", "peer"]},  # our key refused, then the peer
            {"match": "cc:49", "sources": ["infobip", "peer"]},  # Infobip cannot tell, then the peer
            {"match": "cc:358", "sources": ["infobip-broken", "peer"]},  # failing each way, then the peer
        ],
        upstreams={
            "infobip": {
                "kind": "infobip",
                "url": infobip.url,
                "api_key_env": KEY_VARIABLE,
                "timeout": 2.0,
                "cost": str(COST),
                "currency": "EUR",
            },
            "infobip-limited": {"kind": "infobip", "url": limited.url, "api_key": SECRET, "timeout": 2.0},
            "infobip-other-key": {"kind": "infobip", "url": other_key.url, "api_key": SECRET, "timeout": 2.0},
            "infobip-broken": {"kind": "infobip", "url": broken.url, "api_key": SECRET, "timeout": 1.0},
            "peer": {"url": peer.url, "username": "a", "password": "x", "timeout": 2.0},
            "dead": {"url": dead.url, "username": "a", "password": "x", "timeout": 0.5},
        },
        price_live=str(PRICE_LIVE),
        live_breaker_failures=1000,
        live_deadline_seconds=8.0,
    )
    env = {"NUMLOOKUP_CONFIG": str(config), "NUMLOOKUP_LOG_FORMAT": "json", KEY_VARIABLE: SECRET}
    generator = start_live(folder, env=env)
    try:
        yield InfobipServer(next(generator), infobip, limited, other_key, broken, peer, dead)
    finally:
        generator.close()
        for each in (infobip, limited, other_key, broken):
            each.stop()
        peer.stop()
        dead.stop()


def lookup(server: InfobipServer, numbers: list[str], creds: NewCredentials | None = None) -> list[dict[str, Any]]:
    creds = creds or server.live.account()
    with server.live.client(creds) as client:
        response = client.post("/v1/hlr/sync", json={"numbers": numbers, "max_age": 0})
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()["result"]
    return result


def usage(server: InfobipServer) -> dict[str, dict[str, Any]]:
    """Every source's counts, summed over the days stored."""
    with server.live.engine.connect() as conn:
        rows = conn.execute(select(source_usage)).mappings().all()
    totals: dict[str, dict[str, Any]] = {}
    for row in rows:
        total = totals.setdefault(row["source"], {"currency": row["currency"], **dict.fromkeys(COUNTS, 0)})
        for key in COUNTS:
            total[key] += row[key]
    return totals


def usage_after(server: InfobipServer, source: str, key: str, at_least: int) -> dict[str, dict[str, Any]]:
    """The counts once ``source``'s ``key`` reached ``at_least`` (they are stored with a later commit), or at 30 s."""
    deadline = time.monotonic() + 30
    while True:
        totals = usage(server)
        if totals.get(source, {}).get(key, 0) >= at_least or time.monotonic() > deadline:
            return totals
        time.sleep(0.2)


def test_infobips_examples_through_hlr_sync(server: InfobipServer) -> None:
    by_number = {item["number"]: item for item in lookup(server, list(SWISS))}
    assert {n: (i["status"], i["source"]) for n, i in by_number.items()} == {
        "+41793026727": ("ONLINE", "upstream:infobip"),
        "+41793026728": ("ONLINE", "upstream:infobip"),
        "+41793026729": ("ONLINE", "upstream:infobip"),
        "+41793026730": ("OFFLINE", "upstream:infobip"),
        "+41793026731": ("INVALID", "upstream:infobip"),
        "+41793026732": ("UNKNOWN", "upstream:infobip"),
        "+41793026733": ("ONLINE", "upstream:infobip"),
    }
    assert len(server.infobip.requests) >= 1 and server.infobip.refusals == []
    home = by_number["+41793026727"]
    assert (home["ported"], home["roaming"], home["currentNetwork"]["mccmnc"]) == (False, False, "22801")
    assert "error" not in home and home["roamingNetwork"] is None
    # Ported to Sunrise: three Swiss codes are "Sunrise", so the name passes through without an MCC/MNC.
    ported = by_number["+41793026728"]
    assert ported["ported"] is True and ported["originalNetwork"]["mccmnc"] == "22801"
    assert ported["portedNetwork"] == ported["currentNetwork"]
    assert ported["portedNetwork"] == {
        "mccmnc": None,
        "networkName": "Sunrise",
        "countryName": "Switzerland",
        "countryPrefix": "41",
        "countryCode": "CHE",
    }
    # The same, from a Sunrise SIM whose mccMnc agrees: the registry's network.
    assert by_number["+41793026733"]["portedNetwork"]["mccmnc"] == "22802"
    roaming = by_number["+41793026729"]
    assert roaming["roaming"] is True and roaming["ported"] is False
    assert (roaming["roamingNetwork"]["mccmnc"], roaming["roamingNetwork"]["networkName"]) == ("24007", "Tele2 Sverige")
    assert by_number["+41793026730"]["roamingNetwork"] is None and "error" not in by_number["+41793026730"]
    assert by_number["+41793026731"]["error"] == (
        "upstream:infobip says the number is not in service (EC_UNKNOWN_SUBSCRIBER)"
    )
    assert by_number["+41793026732"]["error"] == "upstream:infobip answered status PENDING PENDING_WAITING_DELIVERY"


def official(live: Live, creds: NewCredentials) -> NumberLookupApi:
    config = Configuration(username=creds.api_username, password=creds.api_password, host=live.url + "/v1")
    return NumberLookupApi(ApiClient(config))


def test_the_official_client_reads_infobips_answers(server: InfobipServer) -> None:
    creds = server.live.account(status_style="truefalse")
    result = official(server.live, creds).fetch_info(NumbersToInvestigate(numbers=list(OFFICIAL))).result
    by_number = {item.number: item for item in result}
    assert [by_number[n].status for n in OFFICIAL] == ["true", "true", "true", "false", "INVALID"]
    assert all(item.additional_properties["source"] == "upstream:infobip" for item in result)
    ported = by_number["+41793026748"]
    assert ported.ported is True and ported.ported_network is not None
    assert (ported.ported_network.network_name, ported.ported_network.mccmnc) == ("Sunrise", None)
    roaming = by_number["+41793026749"]
    assert roaming.roaming is True and roaming.roaming_network is not None
    assert roaming.roaming_network.mccmnc == "24007"


def test_failover_from_a_dead_messente_peer_to_infobip(server: InfobipServer) -> None:
    dead_before = usage(server).get("upstream:dead", {}).get("failures", 0)
    [item] = lookup(server, [EE])
    assert (item["status"], item["source"]) == ("ONLINE", "upstream:infobip") and "error" not in item
    assert server.infobip.requests[-1] == {"to": [EE[1:]]}
    assert usage_after(server, "upstream:dead", "failures", dead_before + 1)["upstream:dead"]["failures"] > dead_before


def test_failover_from_infobip_refusing_our_key_to_the_next_source(server: InfobipServer) -> None:
    asked = len(server.peer.requests)
    [item] = lookup(server, [DK])
    assert (item["status"], item["source"]) == ("ONLINE", "upstream:peer") and "error" not in item
    assert server.other_key.refusals[-1] == (401, "credentials")
    assert len(server.peer.requests) == asked + 1


def test_a_number_infobip_cannot_tell_goes_to_the_routes_next_source(server: InfobipServer) -> None:
    asked = len(server.peer.requests)
    [item] = lookup(server, [DE])
    assert (item["status"], item["source"]) == ("ONLINE", "upstream:peer") and "error" not in item
    assert server.infobip.requests[-1] == {"to": [DE[1:]]} and len(server.peer.requests) == asked + 1


def test_a_429_backs_infobip_off_while_the_next_source_answers(server: InfobipServer) -> None:
    limited = server.limited
    [item] = lookup(server, [SE])
    assert (item["status"], item["source"]) == ("ONLINE", "upstream:peer") and "error" not in item
    hits = limited.hits
    assert hits >= 1
    # Within Retry-After nothing reaches the rate-limited Infobip; the Messente peer answers.
    [item] = lookup(server, [SE])
    assert item["source"] == "upstream:peer"
    assert limited.hits == hits
    time.sleep(RETRY_AFTER + 0.5)
    lookup(server, [SE])
    assert limited.hits == hits + 1  # asked again once the back-off passed
    backoff = metric(
        server.live.url, "numlookup_live_source_requests_total", source="upstream:infobip-limited", outcome="backoff"
    )
    assert backoff >= 1


def test_usage_and_cost_of_infobip_are_recorded(server: InfobipServer) -> None:
    before = usage(server).get("upstream:infobip", {"answered": 0, "cost_micros": 0, "credits_micros": 0})
    numbers = ["+41793026760", "+41793026761", "+41793026762"]
    answers = lookup(server, numbers)
    assert [item["source"] for item in answers] == ["upstream:infobip"] * 3
    after = usage_after(server, "upstream:infobip", "answered", before["answered"] + 3)["upstream:infobip"]
    assert after["answered"] - before["answered"] == 3
    assert after["cost_micros"] - before["cost_micros"] == 3 * int(COST * 1_000_000)
    assert after["credits_micros"] - before["credits_micros"] == 3 * int(PRICE_LIVE * 1_000_000)
    assert after["currency"] == "EUR" and after["queries"] >= 1 and after["failures"] == 0
    env = {"NUMLOOKUP_CONFIG": server.live.server.env["NUMLOOKUP_CONFIG"], KEY_VARIABLE: SECRET}
    shown = json.loads(run_cli(server.live.server.data_dir, "sources", "usage", "--json", env=env).stdout)
    row = next(r for r in shown if r["source"] == "upstream:infobip")
    assert row["currency"] == "EUR" and Decimal(row["cost"]) > 0


def test_sources_check_probes_infobip(server: InfobipServer) -> None:
    env = {"NUMLOOKUP_CONFIG": server.live.server.env["NUMLOOKUP_CONFIG"], KEY_VARIABLE: SECRET}
    done = run_cli(server.live.server.data_dir, "sources", "check", "infobip", "--json", env=env, check=False)
    assert done.returncode == 0, done.stderr
    [probe] = json.loads(done.stdout)
    assert (probe["source"], probe["ok"], probe["answer"]["reachable"]) == ("upstream:infobip", True, True)
    refused = run_cli(server.live.server.data_dir, "sources", "check", "infobip-other-key", env=env, check=False)
    assert refused.returncode == 1
    assert "upstream:infobip-other-key rejected our credentials (HTTP 401)" in refused.stderr
    assert SECRET not in done.stdout + done.stderr + refused.stdout + refused.stderr


@pytest.mark.parametrize("mode", ["reset", "hang", "garbage", "http500", "http403", "badjson", "badshape"])
def test_infobip_failing_each_way_hands_the_number_on(server: InfobipServer, mode: str) -> None:
    server.broken.mode = mode
    hits = server.broken.hits
    [item] = lookup(server, [FI])
    assert (item["status"], item["source"]) == ("ONLINE", "upstream:peer") and "error" not in item
    assert server.broken.hits == hits + 1


def test_the_api_key_never_appears_in_answers_logs_or_metrics(server: InfobipServer) -> None:
    """After every failure above (and these: a 401, a 429, a dead peer), nothing shows our key."""
    answers = lookup(server, [DK, SE, EE, FI, "+41793026731"])
    assert all(SECRET not in json.dumps(item) for item in answers)
    assert all(headers.get("authorization") == f"App {SECRET}" for headers in server.infobip.headers)  # it was sent
    with server.live.client() as client:
        assert SECRET not in client.get("/metrics").text
        assert SECRET not in client.get("/openapi.json").text
    log = server.live.server.log_path.read_text()
    assert "/v1/hlr/sync" in log  # the log is the server's, with the lookups in it
    assert SECRET not in log


# --------------------------------------------------------------- settings that refuse the start

GOOD = {"kind": "infobip", "url": "http://127.0.0.1:9", "api_key": "k"}


@pytest.mark.parametrize(
    ("table", "environ", "words"),
    [
        ({**GOOD, "kind": "infobjp"}, {}, ["upstreams.ib.kind: unknown kind 'infobjp'", "enum"]),
        ({"kind": "infobip", "url": "http://127.0.0.1:9"}, {}, ["upstreams.ib.api_key", "api_key_env"]),
        (
            {"kind": "infobip", "url": "http://127.0.0.1:9", "api_key_env": "NUMLOOKUP_TEST_UNSET_KEY"},
            {},
            ["upstreams.ib.api_key_env", "NUMLOOKUP_TEST_UNSET_KEY"],
        ),
        ({**GOOD, "api_key_env": KEY_VARIABLE}, {KEY_VARIABLE: SECRET}, ["upstreams.ib.api_key", "not both"]),
        ({**GOOD, "max_batch": 1001}, {}, ["upstreams.ib.max_batch", "1000"]),
        ({**GOOD, "max_batch": 0}, {}, ["upstreams.ib.max_batch"]),
        ({**GOOD, "url": "api.infobip.com"}, {}, ["upstreams.ib.url"]),
        ({**GOOD, "password": "x"}, {}, ["unknown field", "password"]),
    ],
)
def test_bad_infobip_settings_refuse_the_start(
    tmp_path: Path, table: dict[str, object], environ: dict[str, str], words: list[str]
) -> None:
    config = write_config(
        tmp_path / "numlookup.toml", routes=[{"match": "cc:41", "source": "ib"}], upstreams={"ib": table}
    )
    with pytest.raises(SettingsError) as info:
        load_settings(str(config), environ=environ)
    assert all(word in str(info.value) for word in words), str(info.value)
    assert SECRET not in str(info.value)
    env = {"NUMLOOKUP_CONFIG": str(config), **environ}
    started = run_cli(tmp_path / "data", "serve", "--port", str(free_port()), env=env, check=False)
    assert started.returncode == 1
    shown = " ".join(started.stderr.split())  # the message names the setting (however it is wrapped)
    assert all(word in shown for word in words), shown
    assert SECRET not in started.stdout + started.stderr
