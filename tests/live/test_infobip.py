"""The ``infobip`` kind against a real HTTP peer on 127.0.0.1 that answers with Infobip's own examples.

Every published example and every derived status/error variant is mapped and
checked field by field; the request is checked as Infobip checks it; every
failure of the request as a whole is a ``SourceError`` in our words that never
holds the API key.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from numlookup.live.infobip import InfobipSource
from numlookup.live.networks import SourceNetworks
from numlookup.live.source import LiveAnswer, SourceError
from numlookup.numbering import Resolver
from numlookup.source_settings import InfobipSettings
from tests.peers.infobip import EXAMPLES, InfobipPeer, names

KEY = "003026bbc133714df1834b8638bb496e-8f4b3d9a-secret"  # shaped like the spec's APIKeyHeader example
RESOLVER = Resolver()
SWISS = "+41793026727"  # the number of every Infobip example: a Swisscom range (22801)


def query(
    peer: InfobipPeer,
    numbers: Sequence[str],
    *,
    key: str = KEY,
    resolver: Resolver | None = RESOLVER,
    **options: Any,
) -> dict[str, LiveAnswer]:
    async def run() -> dict[str, LiveAnswer]:
        source = InfobipSource("ib", peer.url, key, resolver=resolver, **options)
        try:
            return await source.query(numbers)
        finally:
            await source.close()

    return asyncio.run(run())


def one(name: str, number: str = SWISS, *, resolver: Resolver | None = RESOLVER) -> LiveAnswer:
    with InfobipPeer(api_key=KEY, answers={number: name}) as peer:
        return query(peer, [number], resolver=resolver)[number]


# --------------------------------------------------------------- the published examples


def test_the_spec_example_of_a_reachable_subscriber_at_home() -> None:
    answer = one("normal")
    assert (answer.reachable, answer.invalid, answer.roaming, answer.error) == (True, False, False, None)
    assert answer.ported_known is True  # "ported": false: where its range is
    assert (answer.ported_mccmnc, answer.ported_name, answer.roaming_name, answer.roaming_gt) == (None,) * 4
    assert answer.checked_at is not None


def test_the_spec_ported_example_names_sunrise_and_not_the_mccmnc() -> None:
    """mccMnc 22801 is Swisscom, not portedNetwork's Sunrise: the name wins, passed through (three Sunrise codes)."""
    answer = one("ported")
    assert (answer.reachable, answer.ported_known) == (True, True)
    assert (answer.ported_mccmnc, answer.ported_name, answer.ported_country) == (None, "Sunrise", "41")
    [resolution] = RESOLVER.resolve([SWISS])
    known, network = SourceNetworks(RESOLVER).porting(resolution, answer)
    assert known is True and network is not None
    assert (network.mccmnc, network.name, network.country.region) == (None, "Sunrise", "CH")


def test_the_spec_roaming_example_resolves_tele2_sweden_through_the_registry() -> None:
    answer = one("roaming")
    assert (answer.reachable, answer.roaming, answer.roaming_name, answer.roaming_country) == (
        True,
        True,
        "Tele2",
        "46",
    )
    assert answer.roaming_gt == "46003"  # servingMSC
    assert answer.roaming_mccmnc is None  # Infobip gives none
    [resolution] = RESOLVER.resolve([SWISS])
    location = SourceNetworks(RESOLVER).location(answer, resolution)
    assert location is not None and (location.mccmnc, location.name) == ("24007", "Tele2 Sverige")


def test_infobips_absent_subscriber_example_is_not_reachable() -> None:
    answer = one("absent")
    assert (answer.reachable, answer.invalid, answer.error, answer.ported_known) == (False, False, None, True)


# --------------------------------------------------------------- statuses and errors


@pytest.mark.parametrize(
    ("variant", "words"),
    [
        ("pending", "status PENDING PENDING_WAITING_DELIVERY"),
        ("accepted", "status ACCEPTED MESSAGE_ACCEPTED"),
        ("expired", "status EXPIRED EXPIRED_EXPIRED"),
        ("rejected", "status REJECTED REJECTED_NETWORK"),
        ("unknown_group", "status SOMETHING_NEW SOMETHING_NEW_STATUS"),
        ("system_failure", "status UNDELIVERABLE UNDELIVERABLE_NOT_DELIVERED with error EC_SYSTEM_FAILURE"),
        ("no_status", "gave no status"),
    ],
)
def test_a_status_that_does_not_tell_keeps_infobips_words(variant: str, words: str) -> None:
    answer = one(variant)
    assert (answer.reachable, answer.invalid) == (None, False)
    assert answer.error == f"upstream:ib {'answered ' if words.startswith('status') else ''}{words}"


@pytest.mark.parametrize(("variant", "reachable"), [("to_operator", True), ("absent_sm", False)])
def test_the_delivered_group_and_both_absent_subscriber_errors(variant: str, reachable: bool) -> None:
    answer = one(variant)
    assert (answer.reachable, answer.invalid, answer.error) == (reachable, False, None)


def test_a_permanent_error_is_invalid_with_infobips_error_name() -> None:
    answer = one("unknown_subscriber")
    assert (answer.invalid, answer.reachable) == (True, False)
    assert answer.error == "upstream:ib says the number is not in service (EC_UNKNOWN_SUBSCRIBER)"
    assert answer.says_something


def test_every_answer_the_peer_gives_is_mapped() -> None:
    """One request with every example and variant: each number gets its own answer, none is lost."""
    numbers = {f"+4179302{i:04d}": name for i, name in enumerate(names())}
    with InfobipPeer(api_key=KEY, answers=numbers) as peer:
        answers = query(peer, list(numbers))
    assert set(answers) == set(numbers)
    assert len(peer.requests) == 1 and peer.requests[0]["to"] == [n[1:] for n in numbers]
    says = {name: answers[number].says_something for number, name in numbers.items()}
    assert [name for name, told in says.items() if not told] == ["no_status"]


# --------------------------------------------------------------- porting: mccMnc only where it agrees


def test_mccmnc_pins_the_ported_network_when_the_registry_calls_it_by_that_name() -> None:
    answer = one("ported_sunrise_sim")  # mccMnc 22802, the registry's "Sunrise"
    assert (answer.ported_known, answer.ported_mccmnc, answer.ported_name) == (True, "22802", None)
    [resolution] = RESOLVER.resolve([SWISS])
    _, network = SourceNetworks(RESOLVER).porting(resolution, answer)
    assert network is not None and (network.mccmnc, network.name) == ("22802", "Sunrise")


def test_without_the_registry_the_ported_network_is_its_name() -> None:
    answer = one("ported_sunrise_sim", resolver=None)
    assert (answer.ported_known, answer.ported_mccmnc, answer.ported_name, answer.ported_country) == (
        True,
        None,
        "Sunrise",
        "41",
    )


def test_a_ported_number_without_a_network_name_takes_mccmnc_only_if_it_is_not_the_range_holder() -> None:
    moved = one("ported_nameless")  # mccMnc 22802 for a Swisscom (22801) range
    assert (moved.ported_known, moved.ported_mccmnc, moved.ported_name) == (True, "22802", None)
    home = one("ported_nameless_home_mccmnc")  # mccMnc 22801: contradicts "ported": it cannot tell where
    assert (home.ported_known, home.ported_mccmnc, home.ported_name) == (False, None, None)
    assert home.reachable is True  # reachability still stands
    assert one("ported_nameless", resolver=None).ported_known is False


def test_roaming_without_a_network_name_keeps_the_serving_switch() -> None:
    answer = one("roaming_nameless")
    assert (answer.roaming, answer.roaming_name, answer.roaming_gt) == (True, None, "46003")
    [resolution] = RESOLVER.resolve([SWISS])
    location = SourceNetworks(RESOLVER).location(answer, resolution)
    assert location is not None and (location.mccmnc, location.country.region) == (None, "SE")


# --------------------------------------------------------------- the request


def test_the_request_is_infobips_with_our_key_and_numbers_without_plus() -> None:
    with InfobipPeer(api_key=KEY) as peer:
        answers = query(peer, [SWISS, "+46739123456"])
    assert set(answers) == {SWISS, "+46739123456"}
    [headers] = peer.headers
    assert headers["authorization"] == f"App {KEY}"
    assert headers["content-type"] == "application/json" and headers["accept"] == "application/json"
    assert peer.requests == [{"to": ["41793026727", "46739123456"]}]
    assert peer.refusals == []


def test_batches_of_at_most_1000_numbers() -> None:
    numbers = [f"+4179{i:07d}" for i in range(2500)]
    with InfobipPeer(api_key=KEY) as peer:
        answers = query(peer, numbers)
    assert sorted(len(r["to"]) for r in peer.requests) == [500, 1000, 1000]
    assert set(answers) == set(numbers) and all(a.reachable for a in answers.values())
    with InfobipPeer(api_key=KEY) as peer:
        query(peer, numbers[:25], max_batch=10)
    assert sorted(len(r["to"]) for r in peer.requests) == [5, 10, 10]


def test_results_are_matched_by_to_whatever_their_order() -> None:
    statuses = {SWISS: "absent", "+41793026834": "normal", "+41793026999": "unknown_subscriber"}
    with InfobipPeer(api_key=KEY, answers=statuses, reverse=True, omit=frozenset({"41793026999"})) as peer:
        answers = query(peer, list(statuses))
    assert answers[SWISS].reachable is False and answers["+41793026834"].reachable is True
    assert "+41793026999" not in answers  # left out: the dispatcher says "gave no answer"
    with InfobipPeer(api_key=KEY, extra=("41790000000",)) as peer:
        assert set(query(peer, [SWISS])) == {SWISS}  # a number nobody asked is dropped


def test_from_settings_reads_the_kinds_settings() -> None:
    settings = InfobipSettings(url="https://x.api.infobip.com/", api_key=KEY, max_batch=250, timeout=1.5)
    source = InfobipSource.from_settings("ib", settings, 8)
    assert (source.name, source.max_batch, source.timeout) == ("upstream:ib", 250, 1.5)
    asyncio.run(source.close())


# --------------------------------------------------------------- the peer refuses what Infobip refuses


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "message_id"),
    [
        ("POST", "/number/1/query", {"Authorization": "App wrong"}, {"to": ["41793026727"]}, 401, "UNAUTHORIZED"),
        ("POST", "/number/1/query", {"Authorization": ""}, {"to": ["41793026727"]}, 401, "UNAUTHORIZED"),
        ("POST", "/number/1/query", {"Authorization": f"Bearer {KEY}"}, {"to": ["41793026727"]}, 401, "UNAUTHORIZED"),
        ("POST", "/number/1/query", {}, {"to": ["+41793026727"]}, 400, "BAD_REQUEST"),
        ("POST", "/number/1/query", {}, {"to": []}, 400, "BAD_REQUEST"),
        ("POST", "/number/1/query", {}, {"to": "41793026727"}, 400, "BAD_REQUEST"),
        ("POST", "/number/1/query", {}, {"to": ["41793026727"], "max_age": 0}, 400, "BAD_REQUEST"),
        ("POST", "/number/1/query", {}, {"to": ["4179302672"] * 1001}, 400, "BAD_REQUEST"),
        ("POST", "/number/1/query?x=1", {}, {"to": ["41793026727"]}, 400, "BAD_REQUEST"),
        ("POST", "/number/1/query", {"Content-Type": "text/plain"}, {"to": ["41793026727"]}, 415, None),
        ("POST", "/number/1/notify", {}, {"to": ["41793026727"]}, 404, None),
        ("GET", "/number/1/query", {}, None, 405, None),
    ],
)
def test_the_peer_refuses_like_infobip(
    method: str, path: str, headers: dict[str, str], body: object, status: int, message_id: str | None
) -> None:
    with InfobipPeer(api_key=KEY) as peer, httpx.Client(base_url=peer.url) as client:
        sent = {name: value for name, value in {"Authorization": f"App {KEY}", **headers}.items() if value}
        response = client.request(method, path, json=body, headers=sent)
    assert response.status_code == status, response.text
    if message_id is not None:
        assert response.json()["requestError"]["serviceException"]["messageId"] == message_id
    assert peer.requests == [] and len(peer.refusals) == 1


def test_more_than_1000_numbers_get_infobips_own_words() -> None:
    with InfobipPeer(api_key=KEY) as peer, httpx.Client(base_url=peer.url) as client:
        response = client.post("/number/1/query", json={"to": ["1"] * 1001}, headers={"Authorization": f"App {KEY}"})
    assert response.status_code == 400
    assert "limited to 1000" in response.json()["requestError"]["serviceException"]["text"]


# --------------------------------------------------------------- failures of the source as a whole


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("refuse", "upstream:ib refused the connection"),
        ("reset", "upstream:ib broke the connection"),
        ("hang", "upstream:ib timed out after 0.5 s"),
        ("garbage", "upstream:ib broke the connection"),
        ("http500", "upstream:ib had a server error (HTTP 500)"),
        ("http401", "upstream:ib rejected our credentials (HTTP 401)"),
        ("http403", "upstream:ib rejected our credentials (HTTP 403)"),
        ("http429", "upstream:ib is rate limiting us (HTTP 429; retry after 7 s)"),
        ("badjson", "upstream:ib sent an answer that is not a Number Lookup result"),
        ("badshape", "upstream:ib sent an answer that is not a Number Lookup result"),
    ],
)
def test_each_failure_is_a_source_error_in_our_words(mode: str, reason: str) -> None:
    with InfobipPeer(api_key=KEY, mode=mode, retry_after=7) as peer:
        with pytest.raises(SourceError) as info:
            query(peer, [SWISS, "+41793026834"], timeout=0.5)
    assert str(info.value) == reason
    assert info.value.retry_after == (7.0 if mode == "http429" else None)
    assert KEY not in str(info.value) and KEY not in repr(info.value)


def test_a_wrong_key_is_refused_and_never_shown() -> None:
    with InfobipPeer(api_key=KEY) as peer:
        with pytest.raises(SourceError, match=r"rejected our credentials \(HTTP 401\)") as info:
            query(peer, [SWISS], key="not-the-key-" + KEY[::-1])
    assert peer.refusals == [(401, "credentials")]
    assert KEY[::-1] not in str(info.value)


def test_a_refused_request_is_a_source_error_naming_only_the_status() -> None:
    """A 400 (the request was wrong for Infobip) is the source's failure; Infobip's text stays out."""
    with InfobipPeer(api_key=KEY) as peer:
        with pytest.raises(SourceError) as info:
            query(peer, ["+41-79"])  # not digits once the "+" is gone: Infobip refuses the request
    assert str(info.value) == "upstream:ib refused the request (HTTP 400)"
    assert peer.refusals == [(400, "to holds something other than digits")]


def test_the_fixture_names_the_source_of_every_example() -> None:
    for name, example in EXAMPLES["examples"].items():
        assert re.search(r"^[\w.-]+/[\w.-]+ \S+ @ [0-9a-f]{40}", example["_source"]), name  # repository path @ commit
    assert "b3be77826a8f1d17ead20f2edb64a03ef343f929" in EXAMPLES["errors"]["_source"]
