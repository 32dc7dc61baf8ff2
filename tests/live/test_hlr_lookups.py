"""The HLR-Lookups source against a real HTTP peer on 127.0.0.1 that checks signatures as the provider does.

The peer (``tests/peers/hlr_lookups.py``) answers with the SDK README's
documented response and variants derived from it (``hlr_lookups.json``), and
recomputes every signature itself from the SDK's recipe, so a request signed
wrongly, with another key, or with a timestamp too far from its clock is
refused here as it would be there.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from numlookup.live.breaker import CircuitBreaker
from numlookup.live.dispatcher import Dispatcher
from numlookup.live.hlr_lookups import HlrLookupsSource, cost_micros, signature
from numlookup.live.kinds import build_sources
from numlookup.live.source import LiveAnswer, SourceError
from numlookup.live.usage import Pricing, UsageCounter
from numlookup.metrics import Metrics
from numlookup.settings import SettingsError, load_settings
from numlookup.source_settings import HlrLookupsSettings
from tests.live_config import write_config
from tests.peers import hlr_lookups as peer_module
from tests.peers.hlr_lookups import DOCUMENTED_NUMBER, KEY, SECRET, HlrLookupsPeer, expected_signature

ABSENT, ROAMING, PORTED_BY_NAME = "+4915112345678", "+447712345678", "+4917612345678"
INVALID, UNDETERMINED, REJECTED = "+4915100000000", "+37251000099", "+393471234567"
OTHER = "+37256000001"  # no variant: the peer's default, derived answer


def ask(
    peer: HlrLookupsPeer,
    numbers: list[str],
    *,
    key: str = KEY,
    secret: str = SECRET,
    timeout: float = 2.0,
    server_clock: bool = True,
    currency: str = "EUR",
    rounds: int = 1,
) -> list[dict[str, LiveAnswer] | SourceError]:
    """``rounds`` queries of ``numbers`` by one source, in turn: each round's answers, or the error it raised."""

    async def run() -> list[dict[str, LiveAnswer] | SourceError]:
        source = HlrLookupsSource(
            "hlr", peer.url, key, secret, timeout=timeout, server_clock=server_clock, currency=currency
        )
        results: list[dict[str, LiveAnswer] | SourceError] = []
        try:
            for _ in range(rounds):
                try:
                    results.append(await source.query(numbers))
                except SourceError as exc:
                    results.append(exc)
        finally:
            await source.close()
        return results

    return asyncio.run(run())


def one(peer: HlrLookupsPeer, number: str, **options: Any) -> LiveAnswer:
    [answers] = ask(peer, [number], **options)
    assert isinstance(answers, dict), answers
    return answers[number]


def failure(peer: HlrLookupsPeer, numbers: list[str], **options: Any) -> SourceError:
    [result] = ask(peer, numbers, **options)
    assert isinstance(result, SourceError), result
    return result


# ------------------------------------------------------------------ signing


def test_the_signature_is_the_sdks_recipe_checked_against_openssl() -> None:
    """The vector was computed with OpenSSL, not with this code::

    printf '%s' '/hlr-lookup1596816977POST{"msisdn":"+14156226819"}' | openssl dgst -sha256 -hmac 'YOUR-API-SECRET'
    """
    vector = "b800fab2379893e1e1a8ed5dff6b235410432703fb64339d11131afb2b60915a"
    body = b'{"msisdn":"+14156226819"}'
    assert signature(b"YOUR-API-SECRET", "/hlr-lookup", 1596816977, "POST", body) == vector
    assert expected_signature("YOUR-API-SECRET", "1596816977", body) == vector  # the peer's own computation


def test_each_lookup_is_one_signed_request_with_the_documented_body() -> None:
    with HlrLookupsPeer() as peer:
        [answers] = ask(peer, [DOCUMENTED_NUMBER, ABSENT, OTHER])
    assert isinstance(answers, dict) and set(answers) == {DOCUMENTED_NUMBER, ABSENT, OTHER}
    assert sorted(body["msisdn"] for body in peer.lookups) == sorted([DOCUMENTED_NUMBER, ABSENT, OTHER])
    assert all(set(body) == {"msisdn"} for body in peer.lookups)
    assert peer.refusals == [] and peer.time_calls == 1  # the provider's clock, asked once for the three


# ------------------------------------------------------------------ the mapping


def test_the_documented_answer_is_a_connected_subscriber_ported_to_the_network_of_its_mccmnc() -> None:
    with HlrLookupsPeer() as peer:
        answer = one(peer, DOCUMENTED_NUMBER)
    assert answer.reachable is True and not answer.invalid and answer.error is None
    # mccmnc 310260 is T-Mobile US, the ported_network_name: the network that holds the subscriber now.
    assert (answer.ported_known, answer.ported_mccmnc, answer.ported_name) == (True, "310260", None)
    assert answer.roaming is False and answer.roaming_name is None and answer.roaming_mccmnc is None
    # "timestamp":"2020-08-07 19:16:17.676+0300": the time of the provider's lookup.
    assert answer.checked_at == datetime(2020, 8, 7, 16, 16, 17, 676000, tzinfo=UTC)
    assert answer.cost_micros == 10_000  # "cost":"0.0100"


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (ABSENT, {"reachable": False, "ported_known": True, "ported_mccmnc": None, "roaming": False}),
        (
            ROAMING,
            {
                "reachable": True,
                "roaming": True,
                "roaming_name": "Swisscom",
                "roaming_country": "41",  # "roaming_country_prefix":"+41"
                "ported_known": True,
                "ported_mccmnc": None,  # is_ported false: not ported, mccmnc is its own range's network
                "cost_micros": 12_500,
            },
        ),
        (
            PORTED_BY_NAME,
            {
                "reachable": True,
                "ported_known": True,
                "ported_mccmnc": None,
                "ported_name": "Vodafone Deutschland",
                "ported_country": "49",
            },
        ),
        (INVALID, {"reachable": False, "invalid": True, "ported_known": False, "error": None}),
        (
            UNDETERMINED,
            {
                "reachable": None,
                "ported_known": False,
                "roaming": None,
                "error": "upstream:hlr answered connectivity_status UNDETERMINED",
            },
        ),
        (
            REJECTED,
            {
                "reachable": None,
                "ported_known": False,
                "error": "upstream:hlr could not complete the lookup (processing_status REJECTED)",
                "cost_micros": 0,
            },
        ),
        (OTHER, {"reachable": True, "ported_known": True, "ported_mccmnc": None, "roaming": False}),
    ],
)
def test_every_documented_connectivity_status_maps(number: str, expected: Mapping[str, object]) -> None:
    with HlrLookupsPeer() as peer:
        answer = one(peer, number)
    assert {name: getattr(answer, name) for name in expected} == expected
    assert answer.checked_at is not None and abs((datetime.now(UTC) - answer.checked_at).total_seconds()) < 60


def test_an_answer_that_cannot_tell_sends_the_number_on() -> None:
    with HlrLookupsPeer() as peer:
        undetermined, rejected = one(peer, UNDETERMINED), one(peer, REJECTED)
    assert not undetermined.says_something and not rejected.says_something


def test_a_word_the_documentation_does_not_list_is_unknown_with_the_word_and_error_code() -> None:
    overrides = {OTHER: {"connectivity_status": "BARRED", "error_code": "HLR-7"}}
    with HlrLookupsPeer(overrides=overrides) as peer:
        answer = one(peer, OTHER)
    assert answer.reachable is None and not answer.invalid
    assert answer.error == "upstream:hlr answered connectivity_status BARRED (error_code HLR-7)"


@pytest.mark.parametrize(
    ("fields", "ported"),
    [
        ({"is_ported": None, "mccmnc": "26203"}, (True, "26203", None)),  # not stated: mccmnc is the network now
        ({"is_ported": True, "mccmnc": None, "mcc": "262", "mnc": "02"}, (True, "26202", None)),  # mcc + mnc
        ({"is_ported": False, "mccmnc": "26202"}, (True, None, None)),  # the provider's explicit "not ported"
        ({"is_ported": True, "mccmnc": None, "ported_network_name": None}, (False, None, None)),  # names none
        ({"is_ported": True, "mccmnc": "2620"}, (True, None, "Vodafone Deutschland")),  # no valid MCC/MNC: the name
    ],
)
def test_how_mccmnc_and_is_ported_name_the_current_network(
    fields: dict[str, object], ported: tuple[bool, str | None, str | None]
) -> None:
    with HlrLookupsPeer(overrides={PORTED_BY_NAME: fields}) as peer:
        answer = one(peer, PORTED_BY_NAME)
    assert (answer.ported_known, answer.ported_mccmnc, answer.ported_name) == ported


@pytest.mark.parametrize(
    ("raw", "micros"),
    [
        (b'"0.0100"', 10_000),
        (b"0.0085", 8_500),  # a JSON number, read exactly
        (b'"0.000001"', 1),
        (b'"0.0000001"', None),  # finer than millionths: not counted as an exact amount
        (b'"-0.01"', None),
        (b'"n/a"', None),
        (b"null", None),
    ],
)
def test_the_answers_cost_is_read_exactly(raw: bytes, micros: int | None) -> None:
    assert cost_micros(msgspec.Raw(raw)) == micros


def test_the_answers_cost_counts_only_in_a_known_currency() -> None:
    with HlrLookupsPeer() as peer:
        assert one(peer, DOCUMENTED_NUMBER, currency="").cost_micros is None
    with HlrLookupsPeer(overrides={OTHER: {"cost": None}}) as peer:
        assert one(peer, OTHER).cost_micros is None  # no cost stated: the configured cost applies


def test_usage_counts_each_answers_own_cost_and_a_429_backs_the_source_off() -> None:
    """Through the dispatcher: 0.0100 + 0.0125 EUR recorded exactly; after a 429 nothing reaches the peer."""

    async def run(peer: HlrLookupsPeer) -> tuple[UsageCounter, list[str | None], int]:
        source = HlrLookupsSource("hlr", peer.url, KEY, SECRET, timeout=2.0, currency="EUR")
        usage = UsageCounter(pricing={source.name: Pricing(cost_micros=7_000, currency="EUR")})
        dispatcher = Dispatcher(
            source, CircuitBreaker(source.name, 5, 10.0), Metrics(), max_concurrency=4, guard_seconds=5.0, usage=usage
        )
        try:
            outcomes = await asyncio.gather(dispatcher.submit(DOCUMENTED_NUMBER), dispatcher.submit(ROAMING))
            assert all(o.answer is not None and o.answer.reachable for o in outcomes)
            peer.mode = "http429"
            failures = [(await dispatcher.submit(ABSENT)).failure]
            hits = peer.hits
            failures.append((await dispatcher.submit(ABSENT)).failure)  # within Retry-After: not sent
            return usage, failures, peer.hits - hits
        finally:
            await dispatcher.close()

    with HlrLookupsPeer(retry_after=30) as peer:
        usage, failures, hits_in_backoff = asyncio.run(run(peer))
    [counts] = usage.pending.values()
    assert (counts.queries, counts.answered, counts.failures) == (3, 2, 1)  # the one held back was never sent
    assert counts.cost_micros == 10_000 + 12_500  # the answers' own costs, not 2 × the configured 7,000
    assert failures[0] == "upstream:hlr is rate limiting us (HTTP 429; retry after 30 s)"
    assert failures[1] is not None and "upstream:hlr asked us to slow down" in failures[1]
    assert hits_in_backoff == 0


# ------------------------------------------------------------------ failures


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("refuse", "upstream:hlr refused the connection"),
        ("reset", "upstream:hlr broke the connection"),
        ("hang", "upstream:hlr timed out after 0.5 s"),
        ("garbage", "upstream:hlr broke the connection"),
        ("http500", "upstream:hlr had a server error (HTTP 500)"),
        ("http402", "upstream:hlr has no credits left for us (HTTP 402)"),
        ("http403", "upstream:hlr rejected our credentials (HTTP 403)"),
        ("http429", "upstream:hlr is rate limiting us (HTTP 429; retry after 2 s)"),
        ("badjson", "upstream:hlr sent an answer that is not an HLR lookup result"),
        ("notlookup", "upstream:hlr sent an answer that is not an HLR lookup result"),
    ],
)
def test_each_failure_is_a_source_error_in_our_words_without_credentials(mode: str, reason: str) -> None:
    with HlrLookupsPeer(mode=mode) as peer:
        error = failure(peer, [OTHER], timeout=0.5)
    assert str(error) == reason
    assert error.retry_after == (2.0 if mode == "http429" else None)
    for text in (str(error), repr(error), repr(error.__cause__), repr(error.__context__)):
        assert SECRET not in text and KEY not in text


def test_a_url_that_is_not_the_providers_base_is_refused_by_the_peer() -> None:
    async def run(peer: HlrLookupsPeer) -> SourceError:
        source = HlrLookupsSource("hlr", peer.url + "/v1", KEY, SECRET, timeout=2.0)
        try:
            with pytest.raises(SourceError) as info:
                await source.query([OTHER])
            return info.value
        finally:
            await source.close()

    with HlrLookupsPeer() as peer:
        error = asyncio.run(run(peer))
    assert str(error) == "upstream:hlr refused the request (HTTP 404)" and peer.lookups == []


def test_an_answer_for_another_number_is_refused() -> None:
    with HlrLookupsPeer(overrides={OTHER: {"msisdn": "+37256000002"}}) as peer:
        error = failure(peer, [OTHER])
    assert str(error) == "upstream:hlr answered for another number than the one asked"


@pytest.mark.parametrize(
    ("key", "secret", "why"),
    [
        ("another-key", SECRET, "unknown X-Digest-Key"),
        (KEY, "another-secret", "X-Digest-Signature does not match"),
    ],
)
def test_wrong_credentials_are_refused_by_the_peer(key: str, secret: str, why: str) -> None:
    with HlrLookupsPeer() as peer:
        error = failure(peer, [OTHER], key=key, secret=secret)
    assert str(error) == "upstream:hlr rejected our credentials (HTTP 401)"
    assert peer.refusals == [(401, why)] and peer.lookups == []
    assert SECRET not in repr(error) and secret not in repr(error)


# ------------------------------------------------------------------ the provider's clock


@pytest.mark.parametrize(("offset", "side"), [(120.0, "past"), (-120.0, "future")])
def test_our_clock_skewed_from_the_providers_is_refused(offset: float, side: str) -> None:
    """The peer's clock 2 minutes ahead: our timestamp is in its past; behind: in its future."""
    with HlrLookupsPeer(clock_offset=offset) as peer:
        error = failure(peer, [OTHER], server_clock=False)
    assert str(error) == "upstream:hlr rejected our credentials (HTTP 401)"
    [(status, why)] = peer.refusals
    assert status == 401 and why.startswith("X-Digest-Timestamp is") and why.endswith(f"s in the {side}")
    assert peer.time_calls == 0


@pytest.mark.parametrize("offset", [120.0, -120.0])
def test_signing_with_the_providers_clock_is_accepted_whatever_ours_says(offset: float) -> None:
    with HlrLookupsPeer(clock_offset=offset) as peer:
        results = ask(peer, [OTHER], rounds=3)
    assert all(isinstance(r, dict) and r[OTHER].reachable for r in results)
    assert peer.refusals == [] and peer.time_calls == 1  # learnt once, kept for the next lookups


def test_after_a_refusal_the_providers_clock_is_learnt_again() -> None:
    async def run(peer: HlrLookupsPeer) -> list[bool]:
        source = HlrLookupsSource("hlr", peer.url, KEY, SECRET, timeout=2.0)
        outcomes = []
        try:
            for offset in (120.0, -120.0, -120.0):
                peer.clock_offset = offset  # the provider's clock jumps after the first lookup
                try:
                    outcomes.append((await source.query([OTHER]))[OTHER].reachable is True)
                except SourceError:
                    outcomes.append(False)
        finally:
            await source.close()
        return outcomes

    with HlrLookupsPeer() as peer:
        outcomes = asyncio.run(run(peer))
    assert outcomes == [True, False, True]  # refused with the stale offset, accepted once it was learnt again
    assert peer.time_calls == 2


def test_when_the_provider_cannot_tell_the_time_our_clock_signs() -> None:
    with HlrLookupsPeer(mode="badtime") as peer:
        answer = one(peer, OTHER)
    assert answer.reachable is True and peer.time_calls == 1 and peer.refusals == []


# ------------------------------------------------------------------ the peer is as strict as the provider


def _signed(body: bytes, *, timestamp: int | None = None, secret: str = SECRET, key: str = KEY) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    mac = hmac.new(secret.encode(), b"/hlr-lookup" + stamp.encode() + b"POST" + body, hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Digest-Key": key,
        "X-Digest-Timestamp": stamp,
        "X-Digest-Signature": mac,
    }


GOOD = b'{"msisdn":"+37256000001"}'


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status", "why"),
    [
        ("POST", "/api/v2/hlr-lookup", GOOD, {"X-Digest-Key": None}, 401, "missing X-Digest-Key"),
        ("POST", "/api/v2/hlr-lookup", GOOD, {"X-Digest-Key": "nope"}, 401, "unknown X-Digest-Key"),
        ("POST", "/api/v2/hlr-lookup", GOOD, {"X-Digest-Timestamp": None}, 401, "X-Digest-Timestamp must be Unix"),
        ("POST", "/api/v2/hlr-lookup", GOOD, {"X-Digest-Timestamp": "1.5e9"}, 401, "X-Digest-Timestamp must be Unix"),
        ("POST", "/api/v2/hlr-lookup", GOOD, {"skew": -120}, 401, "s in the past"),
        ("POST", "/api/v2/hlr-lookup", GOOD, {"skew": 120}, 401, "s in the future"),
        ("POST", "/api/v2/hlr-lookup", GOOD, {"X-Digest-Signature": None}, 401, "missing X-Digest-Signature"),
        ("POST", "/api/v2/hlr-lookup", GOOD, {"X-Digest-Signature": "0" * 64}, 401, "does not match"),
        ("POST", "/api/v2/hlr-lookup", GOOD, {"tamper": b'{"msisdn":"+37256000002"}'}, 401, "does not match"),
        ("POST", "/api/v2/hlr-lookup", GOOD, {"Content-Type": "text/plain"}, 400, "application/json"),
        ("POST", "/api/v2/hlr-lookup", b'{"msisdn":["+37256000001","+37256000002"]}', {}, 400, "one number"),
        ("POST", "/api/v2/hlr-lookup", b'[{"msisdn":"+37256000001"}]', {}, 400, "an object with msisdn"),
        ("POST", "/api/v2/hlr-lookup", b'{"msisdn":"+37256000001","numbers":[]}', {}, 400, "an object with msisdn"),
        ("POST", "/api/v2/hlr-lookup", b'{"msisdn":"37256000001"}', {}, 400, "6 to 15 digits"),
        ("POST", "/api/v2/hlr-lookup", b'{"msisdn":"+372560000011234567"}', {}, 400, "6 to 15 digits"),
        ("POST", "/api/v2/hlr-lookup", b'{"msisdn":', {}, 400, "not JSON"),
        ("POST", "/api/v2/hlr-lookup?msisdn=%2B37256000001", GOOD, {}, 400, "query"),
        ("GET", "/api/v2/hlr-lookup", b"", {}, 405, "Method Not Allowed"),
        ("POST", "/api/v2/hlr-lookups", GOOD, {}, 404, "Not Found"),
    ],
)
def test_the_peer_refuses_what_the_provider_refuses(
    method: str, path: str, body: bytes, headers: dict[str, Any], status: int, why: str
) -> None:
    signed = _signed(body, timestamp=int(time.time()) + headers.pop("skew", 0))
    sent = headers.pop("tamper", body)  # signed for one body, sent with another
    for name, value in headers.items():
        if value is None:
            del signed[name]
        else:
            signed[name] = value
    with HlrLookupsPeer() as peer, httpx.Client(base_url=peer.url) as client:
        response = client.request(method, path, content=sent, headers=signed)
    assert response.status_code == status
    [message] = response.json()["errors"]
    assert why in message
    assert peer.lookups == []


def test_the_peer_accepts_a_request_signed_by_hand_with_the_documented_optional_fields() -> None:
    body = b'{"msisdn":"+37256000001","route":"IP1","storage":"SYNC-API"}'
    with HlrLookupsPeer() as peer, httpx.Client(base_url=peer.url) as client:
        response = client.post("/api/v2/hlr-lookup", content=body, headers=_signed(body))
        now = client.get("/api/v2/time").json()["time"]
    assert response.status_code == 200 and response.json()["msisdn"] == "+37256000001"
    assert abs(now - time.time()) < 5


def test_the_fixture_names_where_its_examples_come_from() -> None:
    fixture = json.loads((Path(peer_module.__file__).parent / "hlr_lookups.json").read_text())
    assert "vmgltd/hlr-lookup-api-php-sdk" in fixture["_source"]
    assert "d3baf9893032c002ca47fbd97ec3cd8e0dd3bf03" in fixture["_source"]
    assert fixture["documented"]["msisdn"] == DOCUMENTED_NUMBER and fixture["variants"]["_source"]


# ------------------------------------------------------------------ settings


def _config(tmp_path: Path, table: dict[str, object]) -> str:
    path = write_config(
        tmp_path / "numlookup.toml",
        routes=[{"match": "cc:1", "source": "hlr"}],
        upstreams={"hlr": {"kind": "hlr-lookups", "url": "https://www.hlr-lookups.com", **table}},
    )
    return str(path)


def test_good_settings_build_a_source_of_one_number_per_request(tmp_path: Path) -> None:
    config = _config(tmp_path, {"api_key": "k", "api_secret_env": "HLR_SECRET", "cost": "0.01", "currency": "EUR"})
    settings = load_settings(config, environ={"HLR_SECRET": "from-the-environment"})
    upstream = settings.upstreams["hlr"]
    assert isinstance(upstream, HlrLookupsSettings)
    assert (upstream.api_key, upstream.api_secret, upstream.server_clock) == ("k", "from-the-environment", True)
    built = build_sources(settings, {"upstream:hlr"})["upstream:hlr"]
    assert isinstance(built.source, HlrLookupsSource) and built.source.max_batch == 1
    assert built.pricing == Pricing(cost_micros=10_000, currency="EUR")


@pytest.mark.parametrize(
    ("table", "environ", "setting"),
    [
        ({"api_secret": "s"}, {}, "upstreams.hlr.api_key"),
        ({"api_key": "k"}, {}, "upstreams.hlr.api_secret"),
        ({"api_key": "k", "api_secret_env": "HLR_SECRET"}, {}, "upstreams.hlr.api_secret_env"),
        ({"api_key": "k", "api_secret": "s", "api_secret_env": "HLR_SECRET"}, {"HLR_SECRET": "x"}, "api_secret"),
        ({"api_key": "k", "api_secret": "s", "url": "https://www.hlr-lookups.com/api/v2"}, {}, "upstreams.hlr.url"),
        ({"api_key": "k", "api_secret": "s", "url": "https://x.test/api/v2/hlr-lookup"}, {}, "upstreams.hlr.url"),
        ({"api_key": "k", "api_secret": "s", "url": "ftp://www.hlr-lookups.com"}, {}, "upstreams.hlr.url"),
        ({"api_key": "k", "api_secret": "s", "server_clock": "yes"}, {}, "server_clock"),
        ({"api_key": "k", "api_secret": "s", "max_batch": 10}, {}, "max_batch"),
        # The kind is checked before the table's own fields, and the message names the table and the kinds there are.
        (
            {"api_key": "k", "api_secret": "s", "kind": "hlrlookups"},
            {},
            "upstreams.hlr.kind: unknown kind 'hlrlookups'",
        ),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(
    tmp_path: Path, table: dict[str, object], environ: dict[str, str], setting: str
) -> None:
    with pytest.raises(SettingsError, match=re.escape(setting)) as info:
        load_settings(_config(tmp_path, table), environ=environ)
    assert "from-the-environment" not in str(info.value) and '"s"' not in str(info.value)
