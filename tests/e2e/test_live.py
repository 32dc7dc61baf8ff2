"""Live lookups end to end: a client → numlookup A → numlookup B → a peer answering like Messente.

Every source is reached over a real socket on 127.0.0.1: B is a second numlookup
server, the peers (``tests/peers/messente.py``) are real HTTP servers that
answer, or misbehave on purpose (refuse, reset, hang, garbage, 500, 401, bad
JSON). Nothing is mocked.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from messente_api import ApiClient, Configuration, NumberLookupApi, NumbersToInvestigate
from pydantic import ValidationError

from numlookup.accounts import NewCredentials, get_account
from numlookup.billing import ledger_rows, parse_amount
from numlookup.billing.ledger import Counts
from numlookup.live.service import OFFLINE_USED
from tests.e2e.clients import OfficialClient, fetch_info, prepare
from tests.e2e.conftest import Live, start_live
from tests.peers.messente import Peer
from tests.support import metric

# Estonia goes A → B → peer. B's peer speaks "true"/"false"; B answers A in ON/OFF.
ONLINE, OFFLINE, ROAMING, UNKNOWN = "+37251000001", "+37251000002", "+37251000003", "+37251000004"
ABSENT, LEAKY = "+37251000008", "+37251000009"  # the peer cannot tell, and says why in its own words
PEER_STATUSES = {
    ONLINE: "true",
    OFFLINE: "false",
    ROAMING: "true",
    UNKNOWN: "UNKNOWN",
    ABSENT: "UNKNOWN",
    LEAKY: "UNKNOWN",
}
PEER_ROAMING = {ROAMING: "24405"}  # Elisa, Finland
PEER_ERRORS = {ABSENT: "Absent Subscriber", LEAKY: "hlr-7.core.internal: MAP dialogue timeout (node tallinn-2)"}
# One misbehaving upstream per country calling code, straight from A.
FAILING = {
    "refuse": ("49", "+4915112345678", "refused the connection"),
    "reset": ("44", "+447712345678", "broke the connection"),
    "hang": ("358", "+358401234567", "timed out"),
    "garbage": ("33", "+33612345678", "broke the connection"),
    "http500": ("31", "+31612345678", "server error (HTTP 500)"),
    "badjson": ("43", "+436641234567", "not a Number Lookup result"),
    "wrongpass": ("48", "+48501234567", "rejected our credentials (HTTP 401)"),
}
SLOW = "+4741234567"  # Norway: a peer that answers after 2 s
FLAKY = "+4520123456"  # Denmark: a peer that hangs until the test heals it
OFFLINE_ONLY = "+32470123456"  # Belgium: no route
PRICE_OFFLINE, PRICE_CACHE, PRICE_LIVE = Decimal("0.01"), Decimal("0.002"), Decimal("0.05")


def toml_value(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value)  # strings, numbers, booleans: JSON spells them as TOML does


def toml(config: dict[str, object]) -> str:
    return "".join(f"{key} = {toml_value(value)}\n" for key, value in config.items())


@dataclass
class Chain:
    a: Live
    b: Live
    peer: Peer
    peers: dict[str, Peer]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    peer = Peer(
        statuses=PEER_STATUSES,
        roaming=PEER_ROAMING,
        errors=PEER_ERRORS,
        default_status="true",
        credentials=("b-at-peer", "pw"),
    ).start()
    peers = {
        "refuse": Peer(mode="refuse"),
        "reset": Peer(mode="reset"),
        "hang": Peer(mode="hang"),
        "garbage": Peer(mode="garbage"),
        "http500": Peer(mode="http500"),
        "badjson": Peer(mode="badjson"),
        "wrongpass": Peer(credentials=("a", "right")),
        "slow": Peer(delay=2.0),
        "flaky": Peer(mode="hang"),
    }
    for p in peers.values():
        p.start()
    b_env = {
        "NUMLOOKUP_LIVE_ROUTES": json.dumps([{"match": "cc:372", "source": "peer"}]),
        "NUMLOOKUP_UPSTREAMS": json.dumps({"peer": {"url": peer.url, "username": "b-at-peer", "password": "pw"}}),
    }
    b_gen = start_live(tmp_path_factory.mktemp("upstream-b"), env=b_env)
    b = next(b_gen)
    a_creds = b.account(credits="1000", status_style="onoff")
    upstreams: dict[str, dict[str, object]] = {
        "b": {"url": b.url + "/v1", "username": a_creds.api_username, "password": a_creds.api_password}
    }
    routes = [{"match": "cc:372", "source": "b"}]
    for name, (cc, _number, _reason) in FAILING.items():
        upstreams[name] = {"url": peers[name].url, "username": "a", "password": "wrong", "timeout": 0.5}
        routes.append({"match": f"cc:{cc}", "source": name})
    upstreams["slow"] = {"url": peers["slow"].url, "username": "a", "password": "x", "timeout": 5.0}
    upstreams["flaky"] = {"url": peers["flaky"].url, "username": "a", "password": "x", "timeout": 0.5}
    routes += [{"match": "cc:47", "source": "slow"}, {"match": "prefix:4520", "source": "upstream:flaky"}]
    a_dir = tmp_path_factory.mktemp("server-a")
    config = a_dir / "numlookup.toml"
    scalars = {
        "price_offline": str(PRICE_OFFLINE),
        "price_cache": str(PRICE_CACHE),
        "price_live": str(PRICE_LIVE),
        "live_breaker_failures": 2,
        "live_breaker_reset_seconds": 1.0,
        "live_deadline_seconds": 5.0,
    }
    config.write_text(
        toml(scalars)
        + toml({"live_routes": routes})
        + "".join(f"[upstreams.{name}]\n" + toml(values) for name, values in upstreams.items())
    )
    a_gen = start_live(a_dir, env={"NUMLOOKUP_CONFIG": str(config)})
    a = next(a_gen)
    try:
        yield Chain(a=a, b=b, peer=peer, peers=peers)
    finally:
        for gen in (a_gen, b_gen):
            gen.close()
        for p in (peer, *peers.values()):
            p.stop()


def lookup(live: Live, creds: NewCredentials, numbers: list[str], **extra: object) -> list[dict[str, Any]]:
    with live.client(creds) as client:
        response = client.post("/v1/hlr/sync", json={"numbers": numbers, **extra})
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()["result"]
    return result


def last_charge(live: Live, creds: NewCredentials) -> tuple[Decimal, int]:
    row = ledger_rows(live.engine, get_account(live.engine, creds.name).id, limit=1)[0]
    return Decimal(-row.amount) / 1_000_000, row.numbers


def last_counts(live: Live, creds: NewCredentials) -> Counts | None:
    return ledger_rows(live.engine, get_account(live.engine, creds.name).id, limit=1)[0].counts


def test_live_answers_through_a_second_numlookup_then_the_cache(chain: Chain) -> None:
    creds = chain.a.account()
    before = len(chain.peer.requests)
    online, offline, roaming, unknown, offline_only, invalid = lookup(
        chain.a, creds, [ONLINE, OFFLINE, ROAMING, UNKNOWN, OFFLINE_ONLY, "12345"]
    )
    assert len(chain.peer.requests) == before + 1  # B asked its peer once, for the whole batch
    assert (online["status"], online["source"], online["roaming"]) == ("ONLINE", "upstream:b", False)
    assert online["currentNetwork"]["mccmnc"] == "24801" and "error" not in online
    assert (offline["status"], offline["source"]) == ("OFFLINE", "upstream:b")
    assert roaming["status"] == "ONLINE" and roaming["roaming"] is True
    assert roaming["roamingNetwork"] == {
        "mccmnc": "24405",
        "networkName": "Elisa",
        "countryName": "Finland",
        "countryPrefix": "358",
        "countryCode": "FIN",
    }
    assert (unknown["status"], unknown["source"]) == ("UNKNOWN", "offline")
    # B's words name its source ("upstream:peer could not tell"); A says it in its own.
    assert unknown["error"] == f"upstream:b could not tell; {OFFLINE_USED}"
    assert unknown["currentNetwork"]["mccmnc"] == "24801"
    assert (offline_only["status"], offline_only["source"]) == ("UNKNOWN", "offline") and "error" not in offline_only
    assert invalid["status"] == "INVALID" and invalid["source"] == "offline"
    assert last_charge(chain.a, creds) == (3 * PRICE_LIVE + 2 * PRICE_OFFLINE, 5)
    assert last_counts(chain.a, creds) == Counts(offline=2, live=3, invalid=1)  # what the usage charts count

    again = lookup(chain.a, creds, [ONLINE, ROAMING, UNKNOWN])
    assert [r["source"] for r in again] == ["cache", "cache", "offline"]
    assert again[0]["checkedAt"] == online["checkedAt"] and again[1]["roamingNetwork"] == roaming["roamingNetwork"]
    assert again[0]["status"] == "ONLINE"
    assert last_charge(chain.a, creds) == (2 * PRICE_CACHE + PRICE_OFFLINE, 3)
    assert last_counts(chain.a, creds) == Counts(offline=1, cached=2)

    asked = len(chain.peer.requests)
    [fresh] = lookup(chain.a, creds, [ONLINE], max_age=0)
    assert fresh["source"] == "upstream:b" and str(fresh["checkedAt"]) > str(online["checkedAt"])
    assert len(chain.peer.requests) == asked + 1  # max_age went on to B, which asked its peer again
    assert chain.peer.requests[-1].get("max_age") == 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", str(fresh["checkedAt"]))


def test_an_upstreams_own_words_reach_clients_only_from_the_allow_list(chain: Chain) -> None:
    """A subscriber state is passed on through both hops; the peer's internals and B's source names are not."""
    creds = chain.a.account()
    absent, leaky, unknown = lookup(chain.a, creds, [ABSENT, LEAKY, UNKNOWN], max_age=0)
    assert absent["error"] == f"Absent Subscriber; {OFFLINE_USED}"
    assert leaky["error"] == f"upstream:b could not tell (its lookup timed out); {OFFLINE_USED}"
    assert unknown["error"] == f"upstream:b could not tell; {OFFLINE_USED}"
    for item in (absent, leaky, unknown):
        assert (item["status"], item["source"]) == ("UNKNOWN", "offline")
        for internal in ("peer", "hlr-7", "tallinn", "MAP"):
            assert internal not in item["error"]
    # B's own clients read B's words: B's source by B's name, the peer's text summed up.
    b_creds = chain.b.account()
    b_absent, b_leaky = lookup(chain.b, b_creds, [ABSENT, LEAKY])
    assert b_absent["error"] == f"Absent Subscriber; {OFFLINE_USED}"
    assert b_leaky["error"] == f"upstream:peer could not tell (its lookup timed out); {OFFLINE_USED}"


@pytest.mark.parametrize("mode", list(FAILING))
def test_every_source_failure_is_a_per_item_unknown_with_its_reason(chain: Chain, mode: str) -> None:
    _cc, number, reason = FAILING[mode]
    creds = chain.a.account()
    started = time.monotonic()
    failed, fine = lookup(chain.a, creds, [number, OFFLINE_ONLY])
    assert time.monotonic() - started < 3.0
    assert (failed["status"], failed["source"]) == ("UNKNOWN", "offline")
    assert reason in str(failed["error"]) and "prefix based response used" in str(failed["error"])
    assert failed["currentNetwork"] is not None  # the offline answer is still given
    assert fine["status"] == "UNKNOWN" and "error" not in fine
    assert last_charge(chain.a, creds) == (2 * PRICE_OFFLINE, 2)  # a failed live query is charged as offline


def test_deadline_answers_the_rest_of_the_batch_and_late_answers_fill_the_cache(chain: Chain) -> None:
    creds = chain.a.account()
    started = time.monotonic()
    slow, fast, offline_only = lookup(chain.a, creds, [SLOW, "+37251000005", OFFLINE_ONLY], deadline=0.4)
    elapsed = time.monotonic() - started
    assert 0.4 <= elapsed < 1.5
    assert (slow["status"], slow["source"]) == ("UNKNOWN", "offline")
    assert slow["error"] == "Live lookup timed out; prefix based response used"
    assert slow["currentNetwork"]["mccmnc"] == "24202"
    assert (fast["status"], fast["source"]) == ("ONLINE", "upstream:b")
    assert offline_only["source"] == "offline"
    assert last_charge(chain.a, creds) == (PRICE_LIVE + 2 * PRICE_OFFLINE, 3)
    time.sleep(2.0)  # the slow peer's answer arrives after the deadline and is kept
    [cached] = lookup(chain.a, creds, [SLOW])
    assert (cached["status"], cached["source"]) == ("ONLINE", "cache")


def test_breaker_opens_so_requests_do_not_wait_then_half_opens(chain: Chain) -> None:
    creds = chain.a.account()
    for _ in range(2):  # two timeouts (0.5 s each) open the circuit
        started = time.monotonic()
        [item] = lookup(chain.a, creds, [FLAKY])
        assert time.monotonic() - started >= 0.45 and "timed out" in str(item["error"])
    assert metric(chain.a.url, "numlookup_live_circuit_state", source="upstream:flaky") == 2
    started = time.monotonic()
    [item] = lookup(chain.a, creds, [FLAKY])
    assert time.monotonic() - started < 0.45  # less than the source's 0.5 s timeout: nobody waited on it
    assert item["status"] == "UNKNOWN" and "circuit open" in str(item["error"])
    assert metric(chain.a.url, "numlookup_live_source_requests_total", source="upstream:flaky", outcome="rejected") >= 1

    chain.peers["flaky"].mode = "messente"  # the source recovers
    time.sleep(1.1)
    [item] = lookup(chain.a, creds, [FLAKY])  # the half-open probe
    assert (item["status"], item["source"]) == ("ONLINE", "upstream:flaky")
    assert metric(chain.a.url, "numlookup_live_circuit_state", source="upstream:flaky") == 0


def test_metrics_count_sources_latency_and_cache(chain: Chain) -> None:
    creds = chain.a.account()
    lookup(chain.a, creds, ["+37251000006"])
    lookup(chain.a, creds, ["+37251000006"])
    assert metric(chain.a.url, "numlookup_live_cache_lookups_total", result="hit") >= 1
    assert metric(chain.a.url, "numlookup_live_cache_lookups_total", result="miss") >= 1
    assert metric(chain.a.url, "numlookup_live_source_requests_total", source="upstream:b", outcome="ok") >= 1
    assert metric(chain.a.url, "numlookup_live_source_latency_seconds_count", source="upstream:b") >= 1


@pytest.mark.parametrize("body", [{"max_age": -1}, {"deadline": "soon"}])
def test_bad_extension_values_are_refused(chain: Chain, body: dict[str, object]) -> None:
    creds = chain.a.account()
    with chain.a.client(creds) as client:
        response = client.post("/v1/hlr/sync", json={"numbers": [ONLINE], **body})
    assert response.status_code == 400 and response.json()["error"]["code"] == 102


def test_no_live_query_for_an_account_that_cannot_pay_the_dearest_answer(chain: Chain) -> None:
    creds = chain.a.account(credits="0.03")
    asked = len(chain.peer.requests)
    with chain.a.client(creds) as client:
        response = client.post("/v1/hlr/sync", json={"numbers": ["+37251000007"]})
    assert response.status_code == 402 and len(chain.peer.requests) == asked
    assert get_account(chain.a.engine, creds.name).balance == parse_amount("0.03")


# ---------------------------------------------------------------- official clients


def official(live: Live, creds: NewCredentials) -> NumberLookupApi:
    config = Configuration(username=creds.api_username, password=creds.api_password, host=live.url + "/v1")
    return NumberLookupApi(ApiClient(config))


def test_official_client_parses_live_answers_for_a_truefalse_account(chain: Chain) -> None:
    creds = chain.a.account(status_style="truefalse")
    response = official(chain.a, creds).fetch_info(NumbersToInvestigate(numbers=[ONLINE, OFFLINE, ROAMING, UNKNOWN]))
    assert [r.status for r in response.result] == ["true", "false", "true", "UNKNOWN"]
    roaming_network = response.result[2].roaming_network
    assert response.result[2].roaming is True and roaming_network is not None and roaming_network.mccmnc == "24405"
    assert response.result[0].additional_properties["source"] in ("upstream:b", "cache")
    # B has no porting data and its peer told no current network: nobody knows, and the client takes null.
    assert [r.ported for r in response.result] == [None] * 4
    # On the default style (auto) the same client gets the same words, by its User-Agent.
    default = official(chain.a, chain.a.account()).fetch_info(NumbersToInvestigate(numbers=[ONLINE, OFFLINE]))
    assert [r.status for r in default.result] == ["true", "false"]
    # The seed's words, asked for by the account, are what this client cannot read.
    with pytest.raises(ValidationError):
        official(chain.a, chain.a.account(status_style="seed")).fetch_info(NumbersToInvestigate(numbers=[ONLINE]))


def test_older_official_client_parses_on_off_for_an_onoff_account(chain: Chain) -> None:
    client = OfficialClient("python", "2.5.2", "onoff")
    prepare(client)  # installs it on first use, or skips saying why
    creds = chain.a.account(status_style="onoff")
    found = fetch_info(
        client, chain.a.url + "/v1", creds.api_username, creds.api_password, [ONLINE, OFFLINE, ROAMING, UNKNOWN]
    )
    assert [r["status"] for r in found] == ["ON", "OFF", "ON", "UNKNOWN"]
    assert found[2]["roaming"] is True
