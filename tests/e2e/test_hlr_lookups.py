"""HLR-Lookups end to end: clients → numlookup (``numlookup serve``) → a peer that checks signatures as the provider.

numlookup runs as a server of its own with ``kind = "hlr-lookups"`` sources in
its settings file, the API secret read from the environment. The peer
(``tests/peers/hlr_lookups.py``) answers with the SDK's documented response and
variants of it, and its clock runs 90 s ahead of ours, so every lookup here is
signed with the provider's clock (``GET /api/v2/time``) or refused. Messente-
compatible peers (``tests/peers/messente.py``) stand before and after it in
failover routes. Nothing is mocked.
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
from numlookup.store.tables import source_usage
from tests.e2e.conftest import Live, start_live
from tests.live_config import write_config
from tests.peers.hlr_lookups import DOCUMENTED_NUMBER, KEY, SECRET, HlrLookupsPeer
from tests.peers.messente import Peer
from tests.support import free_port, metric, run_cli

ABSENT, ROAMING, PORTED_BY_NAME = "+4915112345678", "+447712345678", "+4917612345678"
INVALID, UNDETERMINED, REJECTED = "+4915100000000", "+37251000099", "+393471234567"
LIMITED_DK, WRONG_SECRET_SE = "+4520123456", "+46701234567"
WRONG = "WRONG-secret-never-shown-5e1f"
HLR_COST = Decimal("0.0090")  # configured EUR per number: used only when an answer states no cost of its own


@dataclass
class Hlr:
    live: Live
    hlr: HlrLookupsPeer
    limited: HlrLookupsPeer
    peer: Peer


@pytest.fixture(scope="module")
def hlr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hlr]:
    provider = HlrLookupsPeer(clock_offset=90.0).start()  # 90 s ahead: our own clock would be refused
    limited = HlrLookupsPeer(mode="http429", retry_after=3).start()
    peer = Peer(default_status="ONLINE").start()
    dead = Peer(mode="refuse").start()
    signed = {"kind": "hlr-lookups", "api_key": KEY, "api_secret_env": "HLR_TEST_SECRET", "timeout": 3.0}
    upstreams: dict[str, dict[str, object]] = {
        "hlr": {**signed, "url": provider.url, "cost": str(HLR_COST), "currency": "EUR"},
        "hlr-limited": {**signed, "url": limited.url},
        "hlr-wrong": {**signed, "url": provider.url, "api_secret_env": "HLR_WRONG_SECRET"},
        "peer": {"url": peer.url, "username": "a", "password": "x", "timeout": 1.0},
        "dead": {"url": dead.url, "username": "a", "password": "x", "timeout": 0.5},
    }
    routes: list[dict[str, object]] = [
        {"match": "cc:1", "source": "hlr"},
        {"match": "cc:49", "source": "hlr"},
        {"match": "cc:39", "source": "hlr"},
        {"match": "cc:44", "sources": ["dead", "hlr"]},  # failover to HLR-Lookups
        {"match": "cc:372", "sources": ["hlr", "peer"]},  # from HLR-Lookups, when it cannot tell
        {"match": "cc:45", "sources": ["hlr-limited", "peer"]},  # from HLR-Lookups, rate limited
        {"match": "cc:46", "sources": ["hlr-wrong", "peer"]},  # from HLR-Lookups, our signature refused
    ]
    folder = tmp_path_factory.mktemp("hlr-lookups")
    config = write_config(
        folder / "numlookup.toml",
        routes=routes,
        upstreams=upstreams,
        price_live="0.05",
        live_breaker_failures=1000,
        live_deadline_seconds=5.0,
    )
    env = {
        "NUMLOOKUP_CONFIG": str(config),
        "NUMLOOKUP_LOG_FORMAT": "json",
        "HLR_TEST_SECRET": SECRET,
        "HLR_WRONG_SECRET": WRONG,
    }
    server = start_live(folder, env=env)
    try:
        yield Hlr(live=next(server), hlr=provider, limited=limited, peer=peer)
    finally:
        server.close()
        for stopped in (provider, limited, peer, dead):
            stopped.stop()


def lookup(live: Live, numbers: list[str], creds: NewCredentials | None = None) -> list[dict[str, Any]]:
    with live.client(creds or live.account()) as client:
        response = client.post("/v1/hlr/sync", json={"numbers": numbers, "max_age": 0})
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()["result"]
    return result


def usage(live: Live) -> dict[str, dict[str, Any]]:
    """Every source's totals in ``source_usage``."""
    with live.engine.connect() as conn:
        rows = conn.execute(select(source_usage)).mappings().all()
    totals: dict[str, dict[str, Any]] = {}
    for row in rows:
        total = totals.setdefault(row["source"], {"currency": row["currency"]})
        for key in ("queries", "answered", "failures", "cost_micros", "credits_micros"):
            total[key] = total.get(key, 0) + row[key]
    return totals


def grown(live: Live, before: dict[str, dict[str, Any]], source: str, key: str, by: int) -> dict[str, dict[str, Any]]:
    """``usage`` once ``source``'s ``key`` has grown by ``by`` (the counts are stored with the charge's commit)."""
    deadline = time.monotonic() + 30
    while True:
        after = usage(live)
        if after.get(source, {}).get(key, 0) - before.get(source, {}).get(key, 0) >= by:
            return after
        assert time.monotonic() < deadline, (before, after)
        time.sleep(0.2)


def delta(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]], source: str, key: str) -> int:
    grew: int = after.get(source, {}).get(key, 0) - before.get(source, {}).get(key, 0)
    return grew


def test_the_official_client_reads_hlr_lookups_answers(hlr: Hlr) -> None:
    live = hlr.live
    creds = live.account(status_style="truefalse")
    config = Configuration(username=creds.api_username, password=creds.api_password, host=live.url + "/v1")
    numbers = [DOCUMENTED_NUMBER, ABSENT, ROAMING]
    result = NumberLookupApi(ApiClient(config)).fetch_info(NumbersToInvestigate(numbers=numbers)).result
    by_number = {item.number: item for item in result}
    assert set(by_number) == set(numbers)
    assert all(item.additional_properties["source"] == "upstream:hlr" for item in result)
    documented = by_number[DOCUMENTED_NUMBER]
    assert documented.status == "true" and documented.ported is True and documented.roaming is False
    assert documented.ported_network.mccmnc == documented.current_network.mccmnc == "310260"  # type: ignore[union-attr]  # a ported answer names its network
    assert by_number[ABSENT].status == "false" and by_number[ABSENT].ported is False
    assert by_number[ABSENT].current_network.mccmnc == "26201"  # type: ignore[union-attr]  # the range holder
    roaming = by_number[ROAMING]
    assert roaming.status == "true" and roaming.roaming is True
    assert roaming.roaming_network.mccmnc == "22801"  # type: ignore[union-attr]  # "Swisscom", "+41" from the registry


def test_each_documented_status_through_hlr_sync(hlr: Hlr) -> None:
    documented, absent, invalid, by_name = lookup(hlr.live, [DOCUMENTED_NUMBER, ABSENT, INVALID, PORTED_BY_NAME])
    assert (documented["status"], documented["source"], documented["ported"]) == ("ONLINE", "upstream:hlr", True)
    assert documented["portedNetwork"]["mccmnc"] == "310260" and documented["currentNetwork"]["mccmnc"] == "310260"
    assert documented["checkedAt"] == "2020-08-07T16:16:17.676Z"  # the provider's own "timestamp"
    assert (absent["status"], absent["ported"], absent["currentNetwork"]["mccmnc"]) == ("OFFLINE", False, "26201")
    assert (invalid["status"], invalid["source"]) == ("INVALID", "upstream:hlr")
    # "ported_network_name": "Vodafone Deutschland", "ported_country_prefix": "+49", no MCC/MNC: found by name.
    assert (by_name["status"], by_name["ported"]) == ("ONLINE", True)
    assert by_name["portedNetwork"]["mccmnc"] == "26202" and by_name["originalNetwork"]["mccmnc"] == "26203"
    assert all("error" not in item for item in (documented, absent, invalid, by_name))


def test_a_lookup_that_did_not_complete_is_answered_offline_with_the_reason(hlr: Hlr) -> None:
    [item] = lookup(hlr.live, [REJECTED])
    assert (item["status"], item["source"]) == ("UNKNOWN", "offline")
    assert item["error"] == (
        "upstream:hlr could not complete the lookup (processing_status REJECTED); prefix based response used"
    )


def test_failover_from_a_dead_peer_to_hlr_lookups_counts_the_answers_own_cost(hlr: Hlr) -> None:
    live = hlr.live
    before = usage(live)
    [item] = lookup(live, [ROAMING])
    assert (item["status"], item["source"], item["roaming"]) == ("ONLINE", "upstream:hlr", True)
    assert item["roamingNetwork"]["mccmnc"] == "22801" and item["currentNetwork"]["mccmnc"] == "23410"
    after = grown(live, before, "upstream:hlr", "answered", 1)
    assert delta(before, after, "upstream:dead", "failures") == 1
    assert delta(before, after, "upstream:hlr", "queries") == 1
    # "cost": "0.0125" in the answer, not the configured 0.0090: exactly 12,500 millionths of a euro.
    assert delta(before, after, "upstream:hlr", "cost_micros") == 12_500
    assert after["upstream:hlr"]["currency"] == "EUR"
    assert delta(before, after, "upstream:hlr", "credits_micros") == 50_000  # price_live charged to the client


def test_a_number_hlr_lookups_cannot_tell_goes_to_the_next_source(hlr: Hlr) -> None:
    live = hlr.live
    before = usage(live)
    asked = len(hlr.peer.requests)
    [item] = lookup(live, [UNDETERMINED])
    assert (item["status"], item["source"]) == ("ONLINE", "upstream:peer") and "error" not in item
    assert len(hlr.peer.requests) == asked + 1 and hlr.peer.requests[-1]["numbers"] == [UNDETERMINED]
    after = grown(live, before, "upstream:peer", "answered", 1)
    assert delta(before, after, "upstream:hlr", "queries") == 1  # asked, answered UNDETERMINED, not a failure
    assert delta(before, after, "upstream:hlr", "failures") == 0


def test_a_429_backs_hlr_lookups_off_while_the_next_source_answers(hlr: Hlr) -> None:
    limited = hlr.limited
    [item] = lookup(hlr.live, [LIMITED_DK])
    assert (item["source"], "error" in item) == ("upstream:peer", False)
    hits = limited.hits
    assert hits >= 1
    [item] = lookup(hlr.live, [LIMITED_DK])  # within Retry-After (3 s): nothing reaches the limited provider
    assert item["source"] == "upstream:peer" and limited.hits == hits
    time.sleep(3.2)
    lookup(hlr.live, [LIMITED_DK])
    assert limited.hits > hits  # asked again once the back-off passed
    backoff = metric(
        hlr.live.url, "numlookup_live_source_requests_total", source="upstream:hlr-limited", outcome="backoff"
    )
    assert backoff >= 1


def test_a_refused_signature_fails_over_and_no_credential_is_shown(hlr: Hlr) -> None:
    refusals = len(hlr.hlr.refusals)
    answers = lookup(hlr.live, [WRONG_SECRET_SE, REJECTED, DOCUMENTED_NUMBER])
    assert (answers[0]["status"], answers[0]["source"]) == ("ONLINE", "upstream:peer")
    assert hlr.hlr.refusals[refusals:] == [(401, "X-Digest-Signature does not match")]
    texts = [json.dumps(answers)]
    with hlr.live.client() as client:
        texts += [client.get("/metrics").text, client.get("/openapi.json").text]
    texts.append(hlr.live.server.log_path.read_text())
    for text in texts:
        assert SECRET not in text and WRONG not in text and KEY not in text


def test_usage_and_cost_are_shown_by_the_cli_as_exact_decimals(hlr: Hlr) -> None:
    live = hlr.live
    before = usage(live)
    lookup(live, [DOCUMENTED_NUMBER, ABSENT])
    after = grown(live, before, "upstream:hlr", "answered", 2)
    assert delta(before, after, "upstream:hlr", "cost_micros") == 20_000  # 2 × the answers' "0.0100"
    env = {"NUMLOOKUP_CONFIG": live.server.env["NUMLOOKUP_CONFIG"], "HLR_TEST_SECRET": "x", "HLR_WRONG_SECRET": "y"}
    shown = json.loads(run_cli(live.server.data_dir, "sources", "usage", "--json", env=env).stdout)
    row = next(r for r in shown if r["source"] == "upstream:hlr")
    assert Decimal(row["cost"]) == Decimal(usage(live)["upstream:hlr"]["cost_micros"]) / 1_000_000
    assert row["currency"] == "EUR"


def test_sources_check_probes_hlr_lookups_with_a_signed_lookup(hlr: Hlr) -> None:
    live = hlr.live
    env = {
        "NUMLOOKUP_CONFIG": live.server.env["NUMLOOKUP_CONFIG"],
        "HLR_TEST_SECRET": SECRET,
        "HLR_WRONG_SECRET": WRONG,
    }
    done = run_cli(live.server.data_dir, "sources", "check", "hlr", "--json", env=env)
    [probe] = json.loads(done.stdout)
    assert (probe["source"], probe["ok"], probe["number"][:2]) == ("upstream:hlr", True, "+1")
    assert SECRET not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("table", "environ", "setting"),
    [
        ({"kind": "hlrlookups"}, {}, "upstreams.hlr.kind: unknown kind 'hlrlookups'"),  # an unknown kind
        ({"api_secret_env": None, "api_secret": None}, {}, "upstreams.hlr.api_secret"),  # no credential
        ({}, {}, "upstreams.hlr.api_secret_env"),  # the variable it names is unset
        ({"url": "https://www.hlr-lookups.com/api/v2"}, {"S": "x"}, "upstreams.hlr.url"),
        ({"server_clock": "yes"}, {"S": "x"}, "server_clock"),
    ],
)
def test_bad_hlr_lookups_settings_refuse_the_start(
    tmp_path: Path, table: dict[str, object], environ: dict[str, str], setting: str
) -> None:
    base: dict[str, object] = {"kind": "hlr-lookups", "url": "https://www.hlr-lookups.com", "api_key": KEY}
    base["api_secret_env"] = "S"
    values = {k: v for k, v in {**base, **table}.items() if v is not None}
    config = write_config(
        tmp_path / "numlookup.toml", routes=[{"match": "cc:1", "source": "hlr"}], upstreams={"hlr": values}
    )
    env = {"NUMLOOKUP_CONFIG": str(config), **environ}
    started = run_cli(tmp_path / "data", "serve", "--port", str(free_port()), env=env, check=False)
    assert started.returncode == 1
    said = " ".join(started.stderr.split())  # the message names the setting (however it is wrapped)
    assert setting in said and KEY not in said
