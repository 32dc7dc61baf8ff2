"""Twilio end to end: clients → numlookup (``numlookup serve``) → a real Twilio Lookup v2 peer on 127.0.0.1.

numlookup runs as a server of its own with ``kind = "twilio"`` sources in its
settings file (the Auth Token from an environment variable for one, inline for
the others); the peer (``tests/peers/twilio.py``) answers with Twilio's
published examples and values derived from them, rate-limits, or refuses our
credentials; Messente-compatible peers stand in front of and behind Twilio in
failover routes. Nothing is mocked.
"""

from __future__ import annotations

import base64
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
from tests.peers.twilio import TwilioPeer
from tests.support import free_port, metric, run_cli

SID = "AC5ef8732a3c49700934481addd5ce1659"  # shaped like an Account SID
SECRET = "twilio-auth-token-never-shown-0123456789"  # our Auth Token
TOKEN_VARIABLE = "NUMLOOKUP_TEST_TWILIO_AUTH_TOKEN"
COST = Decimal("0.015")  # USD per number, what Twilio charges us (our figure, for the test)
PRICE_LIVE = Decimal("0.05")
RETRY_AFTER = 5  # seconds the rate-limited Twilio asks for
# UK numbers (an EE range, 23433, like the spec's +447772000001) → (line status, line type) Twilio gives.
UK = {
    "+447772000001": ("reachable", "mobile_ee"),
    "+447772000002": ("unreachable", "mobile_ee"),
    "+447772000003": ("inactive", "mobile_ee"),
    "+447772000004": ("active", "mobile_vodafone_uk"),  # "active": no proof; the network still told
    "+447772000005": ("reachable", "mobile_vodafone_uk"),
    "+447772000006": ("unknown", "landline"),  # tells nothing: a one-source route falls back offline
}
US = "+14159929960"  # the spec's fetchLineTypeIntelligence number: 240/38
OFFICIAL = {  # the same answers for the official client, on numbers not asked before (no cache)
    "+447772000201": ("reachable", "mobile_ee"),
    "+447772000202": ("unreachable", "mobile_ee"),
    "+447772000203": ("inactive", "mobile_ee"),
    "+447772000204": ("reachable", "mobile_vodafone_uk"),
}
INVALID_BY_TWILIO = "+447772000101"  # Twilio answers the spec's fetchInvalid: handed on to the next source
CANADA = "+16135550123"  # 60601 in both packages: handed on
COUNTS = ("queries", "numbers", "answered", "failures", "cost_micros", "credits_micros")
EE, SE, DK, FI = "+37251000001", "+46701234567", "+4520123456", "+358401234567"


@dataclass
class TwilioServer:
    live: Live
    twilio: TwilioPeer
    limited: TwilioPeer
    other_token: TwilioPeer
    broken: TwilioPeer  # its mode is changed by the test that makes it fail each way
    peer: Peer
    dead: Peer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwilioServer]:
    chosen = {**UK, **OFFICIAL, US: ("none", "nonFixedVoip"), CANADA: ("error_60601", "error_60601")}
    twilio = TwilioPeer(
        account_sid=SID,
        auth_token=SECRET,
        line_status={number: status for number, (status, _) in chosen.items()},
        line_type={number: kind for number, (_, kind) in chosen.items()},
        default_line_status="reachable",
        default_line_type="none",
        invalid=frozenset({INVALID_BY_TWILIO}),
    ).start()
    limited = TwilioPeer(account_sid=SID, auth_token=SECRET, mode="http429", retry_after=RETRY_AFTER).start()
    other_token = TwilioPeer(account_sid=SID, auth_token="a-token-that-is-not-ours").start()
    broken = TwilioPeer(account_sid=SID, auth_token=SECRET, default_line_status="reachable").start()
    peer = Peer(default_status="ONLINE").start()
    dead = Peer(mode="refuse").start()
    folder = tmp_path_factory.mktemp("twilio-server")
    config = write_config(
        folder / "numlookup.toml",
        routes=[
            {"match": "prefix:4477720000", "source": "twilio"},
            {"match": "prefix:4477720002", "source": "twilio"},
            {"match": "prefix:1415992996", "source": "twilio"},
            {"match": "prefix:4477720001", "sources": ["twilio", "peer"]},  # Twilio cannot tell, then the peer
            {"match": "prefix:1613", "sources": ["twilio", "peer"]},  # 60601, then the peer
            {"match": "cc:372", "sources": ["dead", "twilio"]},  # a dead Messente peer, then Twilio
            {"match": "cc:46", "sources": ["twilio-limited", "peer"]},  # 429, then the Messente peer
            {"match": "cc:45", "sources": ["twilio-other-token", "peer"]},  # our token refused, then the peer
            {"match": "cc:358", "sources": ["twilio-broken", "peer"]},  # failing each way, then the peer
        ],
        upstreams={
            "twilio": {
                "kind": "twilio",
                "url": twilio.url,
                "account_sid": SID,
                "auth_token_env": TOKEN_VARIABLE,
                "timeout": 2.0,
                "cost": str(COST),
                "currency": "USD",
            },
            "twilio-limited": {"kind": "twilio", "url": limited.url, "account_sid": SID, "auth_token": SECRET},
            "twilio-other-token": {"kind": "twilio", "url": other_token.url, "account_sid": SID, "auth_token": SECRET},
            "twilio-broken": {
                "kind": "twilio",
                "url": broken.url,
                "account_sid": SID,
                "auth_token": SECRET,
                "timeout": 1.0,
            },
            "peer": {"url": peer.url, "username": "a", "password": "x", "timeout": 2.0},
            "dead": {"url": dead.url, "username": "a", "password": "x", "timeout": 0.5},
        },
        price_live=str(PRICE_LIVE),
        live_breaker_failures=1000,
        live_deadline_seconds=8.0,
    )
    env = {"NUMLOOKUP_CONFIG": str(config), "NUMLOOKUP_LOG_FORMAT": "json", TOKEN_VARIABLE: SECRET}
    generator = start_live(folder, env=env)
    try:
        yield TwilioServer(next(generator), twilio, limited, other_token, broken, peer, dead)
    finally:
        generator.close()
        for each in (twilio, limited, other_token, broken):
            each.stop()
        peer.stop()
        dead.stop()


def lookup(server: TwilioServer, numbers: list[str], creds: NewCredentials | None = None) -> list[dict[str, Any]]:
    creds = creds or server.live.account()
    with server.live.client(creds) as client:
        response = client.post("/v1/hlr/sync", json={"numbers": numbers, "max_age": 0})
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()["result"]
    return result


def asked(number: str) -> str:
    """The request target Twilio gets for ``number``."""
    return f"/v2/PhoneNumbers/{number}?Fields=line_type_intelligence%2Cline_status"


def usage(server: TwilioServer) -> dict[str, dict[str, Any]]:
    """Every source's counts, summed over the days stored."""
    with server.live.engine.connect() as conn:
        rows = conn.execute(select(source_usage)).mappings().all()
    totals: dict[str, dict[str, Any]] = {}
    for row in rows:
        total = totals.setdefault(row["source"], {"currency": row["currency"], **dict.fromkeys(COUNTS, 0)})
        for key in COUNTS:
            total[key] += row[key]
    return totals


def usage_after(server: TwilioServer, source: str, key: str, at_least: int) -> dict[str, dict[str, Any]]:
    """The counts once ``source``'s ``key`` reached ``at_least`` (they are stored with a later commit), or at 30 s."""
    deadline = time.monotonic() + 30
    while True:
        totals = usage(server)
        if totals.get(source, {}).get(key, 0) >= at_least or time.monotonic() > deadline:
            return totals
        time.sleep(0.2)


def test_twilios_answers_through_hlr_sync(server: TwilioServer) -> None:
    by_number = {item["number"]: item for item in lookup(server, [*UK, US])}
    assert {n: (i["status"], i["source"]) for n, i in by_number.items()} == {
        "+447772000001": ("ONLINE", "upstream:twilio"),
        "+447772000002": ("OFFLINE", "upstream:twilio"),
        "+447772000003": ("INVALID", "upstream:twilio"),
        "+447772000004": ("UNKNOWN", "upstream:twilio"),
        "+447772000005": ("ONLINE", "upstream:twilio"),
        "+447772000006": ("UNKNOWN", "offline"),
        US: ("UNKNOWN", "upstream:twilio"),
    }
    assert {asked(n) for n in [*UK, US]} <= set(server.twilio.requests) and server.twilio.refusals == []
    home = by_number["+447772000001"]
    assert (home["ported"], home["currentNetwork"]["mccmnc"]) == (False, "23433")  # EE's own: not ported
    assert home["roaming"] is None and home["roamingNetwork"] is None and "error" not in home  # Twilio tells no roaming
    assert "error" not in by_number["+447772000002"]
    assert by_number["+447772000003"]["error"] == (
        "upstream:twilio says the number is not in service (line status inactive)"
    )
    # "active" is no proof of reachability, but the network Twilio names is still news.
    active = by_number["+447772000004"]
    assert active["error"] == "upstream:twilio answered line status active"
    assert active["ported"] is True and active["portedNetwork"]["mccmnc"] == "23415"
    ported = by_number["+447772000005"]
    assert ported["ported"] is True and ported["originalNetwork"]["mccmnc"] == "23433"
    assert ported["portedNetwork"] == ported["currentNetwork"]
    assert (ported["portedNetwork"]["mccmnc"], ported["portedNetwork"]["networkName"]) == ("23415", "Vodafone UK")
    told_nothing = by_number["+447772000006"]
    assert told_nothing["error"] == "upstream:twilio answered line status unknown; prefix based response used"
    # The offline answer: the range's network, and no porting data covers the UK here, so ported is not known.
    assert told_nothing["ported"] is None and told_nothing["currentNetwork"]["mccmnc"] == "23433"
    example = by_number[US]  # the spec's line type example: 240/38, the registry's Voxbone Sweden
    assert example["portedNetwork"]["mccmnc"] == "24038" and example["portedNetwork"]["networkName"] == "Voxbone Sweden"
    assert example["error"] == "upstream:twilio gave no line status"


def official(live: Live, creds: NewCredentials) -> NumberLookupApi:
    config = Configuration(username=creds.api_username, password=creds.api_password, host=live.url + "/v1")
    return NumberLookupApi(ApiClient(config))


def test_the_official_client_reads_twilios_answers(server: TwilioServer) -> None:
    creds = server.live.account(status_style="truefalse")
    result = official(server.live, creds).fetch_info(NumbersToInvestigate(numbers=list(OFFICIAL))).result
    by_number = {item.number: item for item in result}
    assert [by_number[n].status for n in OFFICIAL] == ["true", "false", "INVALID", "true"]
    assert all(item.additional_properties["source"] == "upstream:twilio" for item in result)
    home = by_number["+447772000201"]
    assert home.ported is False and home.current_network is not None and home.current_network.mccmnc == "23433"
    ported = by_number["+447772000204"]
    assert ported.ported is True and ported.ported_network is not None
    assert (ported.ported_network.mccmnc, ported.ported_network.network_name) == ("23415", "Vodafone UK")
    assert not any(item.roaming for item in result)  # Twilio tells no roaming


def test_failover_from_a_dead_messente_peer_to_twilio(server: TwilioServer) -> None:
    dead_before = usage(server).get("upstream:dead", {}).get("failures", 0)
    [item] = lookup(server, [EE])
    assert (item["status"], item["source"]) == ("ONLINE", "upstream:twilio") and "error" not in item
    assert server.twilio.requests[-1] == asked(EE)
    assert usage_after(server, "upstream:dead", "failures", dead_before + 1)["upstream:dead"]["failures"] > dead_before


@pytest.mark.parametrize("number", [INVALID_BY_TWILIO, CANADA])
def test_a_number_twilio_cannot_tell_goes_to_the_routes_next_source(server: TwilioServer, number: str) -> None:
    requests = len(server.peer.requests)
    [item] = lookup(server, [number])
    assert (item["status"], item["source"]) == ("ONLINE", "upstream:peer") and "error" not in item
    assert server.twilio.requests[-1] == asked(number)
    assert len(server.peer.requests) == requests + 1 and server.peer.requests[-1]["numbers"] == [number]


def test_failover_from_twilio_refusing_our_token_to_the_next_source(server: TwilioServer) -> None:
    requests = len(server.peer.requests)
    [item] = lookup(server, [DK])
    assert (item["status"], item["source"]) == ("ONLINE", "upstream:peer") and "error" not in item
    assert server.other_token.refusals[-1] == (401, "credentials")
    assert len(server.peer.requests) == requests + 1


def test_a_429_backs_twilio_off_while_the_next_source_answers(server: TwilioServer) -> None:
    limited = server.limited
    [item] = lookup(server, [SE])
    assert (item["status"], item["source"]) == ("ONLINE", "upstream:peer") and "error" not in item
    hits = limited.hits
    assert hits >= 1
    # Within Retry-After nothing reaches the rate-limited Twilio; the Messente peer answers.
    [item] = lookup(server, [SE])
    assert item["source"] == "upstream:peer"
    assert limited.hits == hits
    time.sleep(RETRY_AFTER + 0.5)
    lookup(server, [SE])
    assert limited.hits == hits + 1  # asked again once the back-off passed
    backoff = metric(
        server.live.url, "numlookup_live_source_requests_total", source="upstream:twilio-limited", outcome="backoff"
    )
    assert backoff >= 1


@pytest.mark.parametrize("mode", ["reset", "hang", "garbage", "http500", "http403", "badjson", "badshape"])
def test_twilio_failing_each_way_hands_the_number_on(server: TwilioServer, mode: str) -> None:
    server.broken.mode = mode
    hits = server.broken.hits
    [item] = lookup(server, [FI])
    assert (item["status"], item["source"]) == ("ONLINE", "upstream:peer") and "error" not in item
    assert server.broken.hits == hits + 1


def test_usage_and_cost_of_twilio_are_recorded(server: TwilioServer) -> None:
    before = usage(server).get("upstream:twilio", {"answered": 0, "cost_micros": 0, "credits_micros": 0})
    numbers = ["+447772000061", "+447772000062", "+447772000063"]
    answers = lookup(server, numbers)
    assert [(item["status"], item["source"]) for item in answers] == [("ONLINE", "upstream:twilio")] * 3
    after = usage_after(server, "upstream:twilio", "answered", before["answered"] + 3)["upstream:twilio"]
    assert after["answered"] - before["answered"] == 3
    assert after["cost_micros"] - before["cost_micros"] == 3 * int(COST * 1_000_000)
    assert after["credits_micros"] - before["credits_micros"] == 3 * int(PRICE_LIVE * 1_000_000)
    assert after["currency"] == "USD" and after["queries"] >= 3 and after["failures"] == 0
    env = {"NUMLOOKUP_CONFIG": server.live.server.env["NUMLOOKUP_CONFIG"], TOKEN_VARIABLE: SECRET}
    shown = json.loads(run_cli(server.live.server.data_dir, "sources", "usage", "--json", env=env).stdout)
    row = next(r for r in shown if r["source"] == "upstream:twilio")
    assert row["currency"] == "USD" and Decimal(row["cost"]) > 0


def test_sources_check_probes_twilio(server: TwilioServer) -> None:
    env = {"NUMLOOKUP_CONFIG": server.live.server.env["NUMLOOKUP_CONFIG"], TOKEN_VARIABLE: SECRET}
    done = run_cli(server.live.server.data_dir, "sources", "check", "twilio", "--json", env=env, check=False)
    assert done.returncode == 0, done.stderr
    [probe] = json.loads(done.stdout)
    assert (probe["source"], probe["ok"], probe["answer"]["reachable"]) == ("upstream:twilio", True, True)
    refused = run_cli(server.live.server.data_dir, "sources", "check", "twilio-other-token", env=env, check=False)
    assert refused.returncode == 1
    assert "upstream:twilio-other-token rejected our credentials (HTTP 401)" in refused.stderr
    assert SECRET not in done.stdout + done.stderr + refused.stdout + refused.stderr


def test_the_credentials_never_appear_in_answers_logs_or_metrics(server: TwilioServer) -> None:
    """After every failure above (and these: a 401, a 429, a dead peer), nothing shows our SID or token."""
    answers = lookup(server, [DK, SE, EE, FI, "+447772000003"])
    expected = "Basic " + base64.b64encode(f"{SID}:{SECRET}".encode()).decode()
    assert all(headers.get("authorization") == expected for headers in server.twilio.headers)  # they were sent
    with server.live.client() as client:
        shown = [json.dumps(answers), client.get("/metrics").text, client.get("/openapi.json").text]
    log = server.live.server.log_path.read_text()
    assert "/v1/hlr/sync" in log  # the log is the server's, with the lookups in it
    for secret in (SECRET, SID, expected.removeprefix("Basic ")):
        assert all(secret not in text for text in [*shown, log]), secret


# --------------------------------------------------------------- settings that refuse the start

GOOD = {"kind": "twilio", "url": "http://127.0.0.1:9", "account_sid": SID, "auth_token": "t"}


@pytest.mark.parametrize(
    ("table", "environ", "words"),
    [
        ({**GOOD, "kind": "twillio"}, {}, ["upstreams.tw.kind: unknown kind 'twillio'", "twilio"]),
        ({key: v for key, v in GOOD.items() if key != "auth_token"}, {}, ["upstreams.tw.auth_token", "auth_token_env"]),
        ({key: v for key, v in GOOD.items() if key != "account_sid"}, {}, ["upstreams.tw.account_sid"]),
        (
            {**GOOD, "auth_token": "", "auth_token_env": "NUMLOOKUP_TEST_UNSET_TOKEN"},
            {},
            ["upstreams.tw.auth_token_env", "NUMLOOKUP_TEST_UNSET_TOKEN"],
        ),
        ({**GOOD, "auth_token_env": TOKEN_VARIABLE}, {TOKEN_VARIABLE: SECRET}, ["upstreams.tw.auth_token", "not both"]),
        ({**GOOD, "url": "https://lookups.twilio.com/v2"}, {}, ["upstreams.tw.url", "without /v2/PhoneNumbers"]),
        ({**GOOD, "url": "lookups.twilio.com"}, {}, ["upstreams.tw.url"]),
        ({**GOOD, "url": "https://lookups.twilio.com?Fields=caller_name"}, {}, ["upstreams.tw.url", "without a query"]),
        ({**GOOD, "max_batch": 10}, {}, ["unknown field", "max_batch"]),
        ({**GOOD, "api_key": "x"}, {}, ["unknown field", "api_key"]),
    ],
)
def test_bad_twilio_settings_refuse_the_start(
    tmp_path: Path, table: dict[str, object], environ: dict[str, str], words: list[str]
) -> None:
    config = write_config(
        tmp_path / "numlookup.toml", routes=[{"match": "cc:44", "source": "tw"}], upstreams={"tw": table}
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
