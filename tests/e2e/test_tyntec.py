"""tyntec end to end: clients → numlookup (``numlookup serve``) → a real tyntec GNV peer on 127.0.0.1.

numlookup runs as a server of its own with ``kind = "tyntec"`` sources in its
settings file (the API key from an environment variable for one, inline for
the others); the peer (``tests/peers/tyntec.py``) answers with tyntec's
published example and its variants, rate-limits, runs out of credit, or
refuses our key; Messente-compatible peers stand in front of and behind tyntec
in failover routes. Nothing is mocked.
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
from tests.peers.messente import Peer
from tests.peers.tyntec import TyntecPeer
from tests.support import free_port, metric, run_cli

SECRET = "tyntec-0b7e5c1d9a-never-shown"  # our tyntec API key
KEY_VARIABLE = "NUMLOOKUP_TEST_TYNTEC_API_KEY"
COST = Decimal("0.008")  # EUR per number, what tyntec charges us
PRICE_LIVE = Decimal("0.05")
RETRY_AFTER = 5  # seconds the rate-limited tyntec asks for
# Numbers of the spec example's Vodafone range (26202, like its +491622943176) → the tyntec answer they get.
VODAFONE = {
    "+491622943176": "gnv",
    "+491622943177": "presence_false",
    "+491622943178": "presence_unknown",
    "+491622943179": "ported",
    "+491622943180": "roaming",
    "+491622943181": "range_elsewhere",
    "+491622943182": "ported_sibling",
    "+491622943183": "failed",
}
US = "+13125550123"  # ported from AT&T to T-Mobile (310 260)
OFFICIAL = {  # the same answers for the official client, on numbers not asked before (no cache)
    "+491622943186": "gnv",
    "+491622943187": "presence_false",
    "+491622943188": "ported",
    "+491622943189": "roaming",
    "+491622943190": "presence_unknown",
}
COUNTS = ("queries", "numbers", "answered", "failures", "cost_micros", "credits_micros")
EE, SE, DK, DE, FI = "+37251000001", "+46701234567", "+4520123456", "+4915112345678", "+358401234567"


@dataclass
class TyntecServer:
    live: Live
    tyntec: TyntecPeer
    limited: TyntecPeer
    other_key: TyntecPeer
    broken: TyntecPeer  # its mode is changed by the test that makes it fail each way
    peer: Peer
    dead: Peer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TyntecServer]:
    tyntec = TyntecPeer(api_key=SECRET, answers={**VODAFONE, **OFFICIAL, US: "us_ported", DE: "failed"}).start()
    limited = TyntecPeer(api_key=SECRET, mode="http429", retry_after=RETRY_AFTER).start()
    other_key = TyntecPeer(api_key="a-key-that-is-not-ours").start()
    broken = TyntecPeer(api_key=SECRET).start()
    peer = Peer(default_status="ONLINE").start()
    dead = Peer(mode="refuse").start()
    folder = tmp_path_factory.mktemp("tyntec-server")
    config = write_config(
        folder / "numlookup.toml",
        routes=[
            {"match": "prefix:4916229431", "source": "tyntec"},
            {"match": "cc:1", "source": "tyntec"},
            {"match": "cc:372", "sources": ["dead", "tyntec"]},  # a dead Messente peer, then tyntec
            {"match": "cc:46", "sources": ["tyntec-limited", "peer"]},  # 429, then the Messente peer
            {"match": "cc:45", "sources": ["tyntec-other-key", "peer"]},  # our key refused, then the peer
            {"match": "cc:49", "sources": ["tyntec", "peer"]},  # tyntec cannot tell, then the peer
            {"match": "cc:358", "sources": ["tyntec-broken", "peer"]},  # failing each way, then the peer
        ],
        upstreams={
            "tyntec": {
                "kind": "tyntec",
                "url": tyntec.url,
                "api_key_env": KEY_VARIABLE,
                "timeout": 2.0,
                "cost": str(COST),
                "currency": "EUR",
            },
            "tyntec-limited": {"kind": "tyntec", "url": limited.url, "api_key": SECRET, "timeout": 2.0},
            "tyntec-other-key": {"kind": "tyntec", "url": other_key.url, "api_key": SECRET, "timeout": 2.0},
            "tyntec-broken": {"kind": "tyntec", "url": broken.url, "api_key": SECRET, "timeout": 1.0},
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
        yield TyntecServer(next(generator), tyntec, limited, other_key, broken, peer, dead)
    finally:
        generator.close()
        for each in (tyntec, limited, other_key, broken):
            each.stop()
        peer.stop()
        dead.stop()


def lookup(server: TyntecServer, numbers: list[str], creds: NewCredentials | None = None) -> list[dict[str, Any]]:
    creds = creds or server.live.account()
    with server.live.client(creds) as client:
        response = client.post("/v1/hlr/sync", json={"numbers": numbers, "max_age": 0})
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()["result"]
    return result


def usage(server: TyntecServer) -> dict[str, dict[str, Any]]:
    """Every source's counts, summed over the days stored."""
    with server.live.engine.connect() as conn:
        rows = conn.execute(select(source_usage)).mappings().all()
    totals: dict[str, dict[str, Any]] = {}
    for row in rows:
        total = totals.setdefault(row["source"], {"currency": row["currency"], **dict.fromkeys(COUNTS, 0)})
        for key in COUNTS:
            total[key] += row[key]
    return totals


def usage_after(server: TyntecServer, source: str, key: str, at_least: int) -> dict[str, dict[str, Any]]:
    """The counts once ``source``'s ``key`` reached ``at_least`` (they are stored with a later commit), or at 30 s."""
    deadline = time.monotonic() + 30
    while True:
        totals = usage(server)
        if totals.get(source, {}).get(key, 0) >= at_least or time.monotonic() > deadline:
            return totals
        time.sleep(0.2)


def test_tyntecs_answers_through_hlr_sync(server: TyntecServer) -> None:
    by_number = {item["number"]: item for item in lookup(server, [*VODAFONE, US])}
    assert {n: (i["status"], i["source"]) for n, i in by_number.items()} == {
        "+491622943176": ("ONLINE", "upstream:tyntec"),
        "+491622943177": ("OFFLINE", "upstream:tyntec"),
        "+491622943178": ("UNKNOWN", "upstream:tyntec"),
        "+491622943179": ("ONLINE", "upstream:tyntec"),
        "+491622943180": ("ONLINE", "upstream:tyntec"),
        "+491622943181": ("ONLINE", "upstream:tyntec"),
        "+491622943182": ("ONLINE", "upstream:tyntec"),
        "+491622943183": ("UNKNOWN", "offline"),  # an unsuccessful attempt, and no other source on its route
        US: ("ONLINE", "upstream:tyntec"),
    }
    assert server.tyntec.refusals == []
    assert {"msisdn": "+491622943176"} in server.tyntec.requests
    home = by_number["+491622943176"]  # the spec's example
    assert (home["ported"], home["roaming"], home["currentNetwork"]["mccmnc"]) == (False, False, "26202")
    assert "error" not in home and home["roamingNetwork"] is None and home["portedNetwork"] is None
    ported = by_number["+491622943179"]
    assert ported["ported"] is True and ported["originalNetwork"]["mccmnc"] == "26202"
    assert ported["portedNetwork"] == ported["currentNetwork"]
    assert (ported["portedNetwork"]["mccmnc"], ported["portedNetwork"]["networkName"]) == (
        "26201",
        "Telekom Deutschland",
    )
    roaming = by_number["+491622943180"]
    assert roaming["roaming"] is True and roaming["ported"] is False
    assert (roaming["roamingNetwork"]["mccmnc"], roaming["roamingNetwork"]["networkName"]) == ("23201", "A1")
    # tyntec's range holder is Telekom where ours is Vodafone: the number is at Telekom, ours stays the original.
    elsewhere = by_number["+491622943181"]
    assert (elsewhere["ported"], elsewhere["currentNetwork"]["mccmnc"], elsewhere["originalNetwork"]["mccmnc"]) == (
        True,
        "26201",
        "26202",
    )
    sibling = by_number["+491622943182"]  # "ported" with an IMSI of Vodafone's other code: at home
    assert (sibling["ported"], sibling["currentNetwork"]["mccmnc"]) == (False, "26202")
    assert by_number["+491622943177"]["roamingNetwork"] is None and "error" not in by_number["+491622943177"]
    assert by_number["+491622943178"]["error"] == "upstream:tyntec answered presence unknown"
    assert by_number["+491622943183"]["error"] == (
        "upstream:tyntec could not look the number up (tyntec error code 1); prefix based response used"
    )
    us = by_number[US]
    assert (us["ported"], us["portedNetwork"]["mccmnc"], us["portedNetwork"]["networkName"]) == (
        True,
        "310260",
        "T-Mobile",
    )


def official(live: Live, creds: NewCredentials) -> NumberLookupApi:
    config = Configuration(username=creds.api_username, password=creds.api_password, host=live.url + "/v1")
    return NumberLookupApi(ApiClient(config))


def test_the_official_client_reads_tyntecs_answers(server: TyntecServer) -> None:
    creds = server.live.account(status_style="truefalse")
    result = official(server.live, creds).fetch_info(NumbersToInvestigate(numbers=list(OFFICIAL))).result
    by_number = {item.number: item for item in result}
    assert [by_number[n].status for n in OFFICIAL] == ["true", "false", "true", "true", "UNKNOWN"]
    assert all(item.additional_properties["source"] == "upstream:tyntec" for item in result)
    ported = by_number["+491622943188"]
    assert ported.ported is True and ported.ported_network is not None
    assert (ported.ported_network.mccmnc, ported.ported_network.network_name) == ("26201", "Telekom Deutschland")
    roaming = by_number["+491622943189"]
    assert roaming.roaming is True and roaming.roaming_network is not None
    assert roaming.roaming_network.mccmnc == "23201"
    assert by_number["+491622943190"].error == "upstream:tyntec answered presence unknown"


def test_failover_from_a_dead_messente_peer_to_tyntec(server: TyntecServer) -> None:
    dead_before = usage(server).get("upstream:dead", {}).get("failures", 0)
    [item] = lookup(server, [EE])
    assert (item["status"], item["source"]) == ("ONLINE", "upstream:tyntec") and "error" not in item
    assert server.tyntec.requests[-1] == {"msisdn": EE}
    assert usage_after(server, "upstream:dead", "failures", dead_before + 1)["upstream:dead"]["failures"] > dead_before


def test_failover_from_tyntec_refusing_our_key_to_the_next_source(server: TyntecServer) -> None:
    asked = len(server.peer.requests)
    [item] = lookup(server, [DK])
    assert (item["status"], item["source"]) == ("ONLINE", "upstream:peer") and "error" not in item
    assert server.other_key.refusals[-1] == (401, "credentials")
    assert len(server.peer.requests) == asked + 1


def test_a_number_tyntec_cannot_tell_goes_to_the_routes_next_source(server: TyntecServer) -> None:
    asked = len(server.peer.requests)
    [item] = lookup(server, [DE])  # tyntec answers errorCode "1"
    assert (item["status"], item["source"]) == ("ONLINE", "upstream:peer") and "error" not in item
    assert server.tyntec.requests[-1] == {"msisdn": DE} and len(server.peer.requests) == asked + 1


def test_a_429_backs_tyntec_off_while_the_next_source_answers(server: TyntecServer) -> None:
    limited = server.limited
    [item] = lookup(server, [SE])
    assert (item["status"], item["source"]) == ("ONLINE", "upstream:peer") and "error" not in item
    hits = limited.hits
    assert hits >= 1
    # Within Retry-After nothing reaches the rate-limited tyntec; the Messente peer answers.
    [item] = lookup(server, [SE])
    assert item["source"] == "upstream:peer"
    assert limited.hits == hits
    time.sleep(RETRY_AFTER + 0.5)
    lookup(server, [SE])
    assert limited.hits == hits + 1  # asked again once the back-off passed
    backoff = metric(
        server.live.url, "numlookup_live_source_requests_total", source="upstream:tyntec-limited", outcome="backoff"
    )
    assert backoff >= 1


def test_usage_and_cost_of_tyntec_are_recorded(server: TyntecServer) -> None:
    before = usage(server).get("upstream:tyntec", {"answered": 0, "cost_micros": 0, "credits_micros": 0})
    numbers = ["+491622943193", "+491622943194", "+491622943195"]
    answers = lookup(server, numbers)
    assert [item["source"] for item in answers] == ["upstream:tyntec"] * 3
    after = usage_after(server, "upstream:tyntec", "answered", before["answered"] + 3)["upstream:tyntec"]
    assert after["answered"] - before["answered"] == 3
    assert after["cost_micros"] - before["cost_micros"] == 3 * int(COST * 1_000_000)
    assert after["credits_micros"] - before["credits_micros"] == 3 * int(PRICE_LIVE * 1_000_000)
    assert after["currency"] == "EUR" and after["queries"] >= 3 and after["failures"] == 0
    env = {"NUMLOOKUP_CONFIG": server.live.server.env["NUMLOOKUP_CONFIG"], KEY_VARIABLE: SECRET}
    shown = json.loads(run_cli(server.live.server.data_dir, "sources", "usage", "--json", env=env).stdout)
    row = next(r for r in shown if r["source"] == "upstream:tyntec")
    assert row["currency"] == "EUR" and Decimal(row["cost"]) > 0


def test_sources_check_probes_tyntec(server: TyntecServer) -> None:
    env = {"NUMLOOKUP_CONFIG": server.live.server.env["NUMLOOKUP_CONFIG"], KEY_VARIABLE: SECRET}
    done = run_cli(server.live.server.data_dir, "sources", "check", "tyntec", "--json", env=env, check=False)
    assert done.returncode == 0, done.stderr
    [probe] = json.loads(done.stdout)
    assert (probe["source"], probe["ok"], probe["answer"]["reachable"]) == ("upstream:tyntec", True, True)
    refused = run_cli(server.live.server.data_dir, "sources", "check", "tyntec-other-key", env=env, check=False)
    assert refused.returncode == 1
    assert "upstream:tyntec-other-key rejected our credentials (HTTP 401)" in refused.stderr
    assert SECRET not in done.stdout + done.stderr + refused.stdout + refused.stderr


@pytest.mark.parametrize("mode", ["reset", "hang", "garbage", "http500", "http402", "http403", "badjson", "badshape"])
def test_tyntec_failing_each_way_hands_the_number_on(server: TyntecServer, mode: str) -> None:
    server.broken.mode = mode
    hits = server.broken.hits
    [item] = lookup(server, [FI])
    assert (item["status"], item["source"]) == ("ONLINE", "upstream:peer") and "error" not in item
    assert server.broken.hits == hits + 1


def test_the_api_key_never_appears_in_answers_logs_or_metrics(server: TyntecServer) -> None:
    """After every failure above (and these: a 401, a 429, a dead peer), nothing shows our key."""
    answers = lookup(server, [DK, SE, EE, FI, "+491622943183"])
    assert all(SECRET not in json.dumps(item) for item in answers)
    assert all(headers.get("apikey") == SECRET for headers in server.tyntec.headers)  # it was sent
    with server.live.client() as client:
        assert SECRET not in client.get("/metrics").text
        assert SECRET not in client.get("/openapi.json").text
    log = server.live.server.log_path.read_text()
    assert "/v1/hlr/sync" in log  # the log is the server's, with the lookups in it
    assert SECRET not in log


# --------------------------------------------------------------- settings that refuse the start

GOOD = {"kind": "tyntec", "url": "http://127.0.0.1:9", "api_key": "k"}


@pytest.mark.parametrize(
    ("table", "environ", "words"),
    [
        ({**GOOD, "kind": "tyntek"}, {}, ["upstreams", "kind", "tyntek"]),
        ({"kind": "tyntec", "url": "http://127.0.0.1:9"}, {}, ["upstreams.ty.api_key", "api_key_env"]),
        (
            {"kind": "tyntec", "url": "http://127.0.0.1:9", "api_key_env": "NUMLOOKUP_TEST_UNSET_KEY"},
            {},
            ["upstreams.ty.api_key_env", "NUMLOOKUP_TEST_UNSET_KEY"],
        ),
        ({**GOOD, "api_key_env": KEY_VARIABLE}, {KEY_VARIABLE: SECRET}, ["upstreams.ty.api_key", "not both"]),
        ({**GOOD, "url": "https://api.tyntec.com/nis/v1/"}, {}, ["upstreams.ty.url", "API base", "/nis/v1"]),
        ({**GOOD, "url": "api.tyntec.com"}, {}, ["upstreams.ty.url"]),
        ({**GOOD, "max_batch": 10}, {}, ["unknown field", "max_batch"]),
        ({**GOOD, "password": "x"}, {}, ["unknown field", "password"]),
    ],
)
def test_bad_tyntec_settings_refuse_the_start(
    tmp_path: Path, table: dict[str, object], environ: dict[str, str], words: list[str]
) -> None:
    config = write_config(
        tmp_path / "numlookup.toml", routes=[{"match": "cc:49", "source": "ty"}], upstreams={"ty": table}
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
