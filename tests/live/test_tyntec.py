"""The ``tyntec`` kind against a real HTTP peer on 127.0.0.1 that answers with tyntec's own GNV example.

The spec's example and every derived variant (presence, porting, roaming, error
code, MCC/MNC shapes) are mapped and checked field by field, then resolved the
way the service resolves them; the request is checked as the spec describes
it; every failure of the request as a whole is a ``SourceError`` in our words
that never holds the API key.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from numlookup.live.networks import SourceNetworks
from numlookup.live.source import LiveAnswer, SourceError
from numlookup.live.tyntec import TyntecSource
from numlookup.numbering import Resolver
from numlookup.numbering.models import Network
from numlookup.source_settings import TyntecSettings
from tests.peers.tyntec import ERRORS, EXAMPLES, TyntecPeer, names

KEY = "tyntec-4f0c2b9e7d1a-api-key-secret"
RESOLVER = Resolver()
NETWORKS = SourceNetworks(RESOLVER)
VODAFONE = "+491622943176"  # the spec example's msisdn: a Vodafone Deutschland range (26202)
US = "+13125550123"  # a US number: the numbering data names no MCC/MNC for its range


def query(
    peer: TyntecPeer,
    numbers: Sequence[str],
    *,
    key: str = KEY,
    resolver: Resolver | None = RESOLVER,
    url: str | None = None,
    **options: Any,
) -> dict[str, LiveAnswer]:
    async def run() -> dict[str, LiveAnswer]:
        source = TyntecSource("ty", url or peer.url, key, resolver=resolver, **options)
        try:
            return await source.query(numbers)
        finally:
            await source.close()

    return asyncio.run(run())


def one(name: str, number: str = VODAFONE, *, resolver: Resolver | None = RESOLVER) -> LiveAnswer:
    with TyntecPeer(api_key=KEY, answers={number: name}) as peer:
        answer = query(peer, [number], resolver=resolver)[number]
    assert peer.refusals == []
    return answer


def current(answer: LiveAnswer, number: str = VODAFONE) -> tuple[bool, Network | None]:
    """What the service makes of the answer's porting: (known, the network it was ported to or None at home)."""
    [resolution] = RESOLVER.resolve([number])
    return NETWORKS.porting(resolution, answer)


def serving(answer: LiveAnswer, number: str = VODAFONE) -> Network | None:
    [resolution] = RESOLVER.resolve([number])
    return NETWORKS.location(answer, resolution)


# --------------------------------------------------------------- the published example


def test_the_spec_example_is_a_reachable_subscriber_at_home() -> None:
    answer = one("gnv")
    assert (answer.reachable, answer.invalid, answer.roaming, answer.error) == (True, False, False, None)
    assert (answer.ported_known, answer.ported_mccmnc) == (True, None)  # "ported": "false", nrh 262 02 = ours
    assert (answer.roaming_mccmnc, answer.roaming_name, answer.roaming_gt) == (None, None, None)
    assert answer.checked_at is not None
    assert current(answer) == (True, None)
    assert answer.says_something


# --------------------------------------------------------------- presence


@pytest.mark.parametrize(
    ("variant", "reachable", "error"),
    [
        ("gnv", True, None),
        ("presence_false", False, None),
        ("presence_unknown", None, "upstream:ty answered presence unknown"),
        ("presence_other", None, "upstream:ty answered presence standby"),
        ("no_presence", None, "upstream:ty gave no presence"),
        ("boolean_flags", True, None),
    ],
)
def test_presence_is_reachability(variant: str, reachable: bool | None, error: str | None) -> None:
    answer = one(variant)
    assert (answer.reachable, answer.invalid, answer.error) == (reachable, False, error)
    assert answer.ported_known is True  # porting still stands whatever the presence


def test_an_unsuccessful_attempt_tells_nothing_whatever_its_other_fields_say() -> None:
    answer = one("failed")  # errorCode "1", with the example's presence "true" and ported "false" left in
    assert (answer.reachable, answer.invalid, answer.roaming, answer.ported_known) == (None, False, None, False)
    assert answer.error == "upstream:ty could not look the number up (tyntec error code 1)"
    assert not answer.says_something  # the route's next source is asked


# --------------------------------------------------------------- porting


def test_a_ported_number_is_at_its_imsis_network() -> None:
    answer = one("ported")
    assert (answer.reachable, answer.ported_known, answer.ported_mccmnc) == (True, True, "26201")
    known, network = current(answer)
    assert known and network is not None and (network.mccmnc, network.name) == ("26201", "Telekom Deutschland")


@pytest.mark.parametrize("variant", ["ported_unknown", "ported_no_imsi", "bad_codes", "numeric_mnc"])
def test_porting_tyntec_cannot_state_is_left_to_the_numbering_data(variant: str) -> None:
    answer = one(variant)
    assert (answer.ported_known, answer.ported_mccmnc) == (False, None)
    assert answer.reachable is True  # reachability still counts
    assert current(answer) == (False, None)


def test_another_code_of_the_same_operator_is_not_a_port() -> None:
    """262 09 is Vodafone's too: an IMSI or a range holder written with it is the range holder (26202)."""
    ported_sibling = one("ported_sibling")  # "ported": "true", IMSI 262 09
    assert (ported_sibling.ported_known, ported_sibling.ported_mccmnc) == (True, "26202")
    assert current(ported_sibling) == (True, None)
    for variant in ("imsi_sibling", "range_sibling"):  # "ported": "false"
        answer = one(variant)
        assert (answer.ported_known, answer.ported_mccmnc) == (True, None), variant
    assert one("ported_sibling", resolver=None).ported_mccmnc == "26209"  # without the registry, as tyntec says


def test_tyntecs_range_holder_of_another_operator_is_where_the_number_is() -> None:
    answer = one("range_elsewhere")  # not ported, nrh Telekom 262 01 where the numbering data says Vodafone
    assert (answer.ported_known, answer.ported_mccmnc) == (True, "26201")
    known, network = current(answer)
    assert known and network is not None and network.mccmnc == "26201"
    [resolution] = RESOLVER.resolve([VODAFONE])  # originalNetwork stays the numbering data's
    assert resolution.original_network is not None and resolution.original_network.mccmnc == "26202"
    assert one("range_elsewhere", resolver=None).ported_mccmnc is None  # nothing to compare with: not ported


def test_three_digit_mncs_of_a_us_number() -> None:
    ported = one("us_ported", US)  # AT&T 310 410 → T-Mobile 310 260
    assert (ported.ported_known, ported.ported_mccmnc) == (True, "310260")
    known, network = current(ported, US)
    assert known and network is not None and (network.mccmnc, network.name) == ("310260", "T-Mobile")
    home = one("us_home", US)  # at its range holder; ours names no MCC/MNC, so "false" is simply not ported
    assert (home.ported_known, home.ported_mccmnc) == (True, None)
    assert current(home, US) == (True, None)


def test_a_zero_padded_three_digit_mnc_is_read_as_the_registrys_two_digit_one() -> None:
    assert one("padded_mnc").ported_mccmnc == "26201"  # 262 + 001
    assert one("padded_mnc", resolver=None).ported_mccmnc == "262001"  # without the registry: as written


# --------------------------------------------------------------- roaming


def test_roaming_on_the_serving_switchs_network() -> None:
    answer = one("roaming")
    assert (answer.reachable, answer.roaming, answer.roaming_mccmnc) == (True, True, "23201")
    network = serving(answer)
    assert network is not None and (network.mccmnc, network.name) == ("23201", "A1")


def test_roaming_without_codes_keeps_the_switchs_operator_or_its_global_title() -> None:
    named = one("roaming_codeless")  # mscOperator "A1", mscCC "43"
    assert (named.roaming, named.roaming_mccmnc, named.roaming_name, named.roaming_country) == (True, None, "A1", "43")
    network = serving(named)
    assert network is not None and network.mccmnc == "23201"  # the registry's one "A1" in Austria
    switch = one("roaming_switch_only")  # msc "4366400000", an A1 Austria range
    assert (switch.roaming, switch.roaming_name, switch.roaming_gt) == (True, None, "4366400000")
    network = serving(switch)
    assert network is not None and network.country.region == "AT"


@pytest.mark.parametrize(("variant", "roaming"), [("gnv", False), ("roaming_unknown", None), ("boolean_flags", False)])
def test_roaming_false_or_unknown_names_no_serving_network(variant: str, roaming: bool | None) -> None:
    answer = one(variant)
    assert (answer.roaming, answer.roaming_mccmnc, answer.roaming_name, answer.roaming_gt) == (
        roaming,
        None,
        None,
        None,
    )


def test_every_answer_the_peer_gives_is_mapped() -> None:
    """Every example and variant, one request each and concurrently: each number gets its own answer or fails."""
    good = [name for name in names() if name not in ("another_number", "asynchronous")]
    numbers = {f"+4916229431{i:02d}": name for i, name in enumerate(good)}
    with TyntecPeer(api_key=KEY, answers=numbers) as peer:
        answers = query(peer, list(numbers))
    assert set(answers) == set(numbers)
    assert sorted(r["msisdn"] for r in peer.requests) == sorted(numbers)
    says = {name: answers[number].says_something for number, name in numbers.items()}
    assert [name for name, told in says.items() if not told] == ["failed"]


# --------------------------------------------------------------- the request


def test_the_request_is_the_specs_with_our_key() -> None:
    with TyntecPeer(api_key=KEY) as peer:
        answers = query(peer, [VODAFONE])
    assert set(answers) == {VODAFONE}
    assert peer.targets == ["/nis/v1/gnv?msisdn=%2B491622943176"]  # "+" encoded: not read as a space
    assert peer.requests == [{"msisdn": VODAFONE}]
    [headers] = peer.headers
    assert headers["apikey"] == KEY and headers["accept"] == "application/json"
    assert "authorization" not in headers and "content-length" not in headers
    assert peer.refusals == []


def test_one_request_per_number() -> None:
    numbers = [f"+4916229431{i:02d}" for i in range(12)]
    with TyntecPeer(api_key=KEY) as peer:
        answers = query(peer, numbers, max_connections=4)
    assert set(answers) == set(numbers) and all(a.reachable for a in answers.values())
    assert sorted(r["msisdn"] for r in peer.requests) == numbers


def test_from_settings_reads_the_kinds_settings() -> None:
    settings = TyntecSettings(url="https://api.tyntec.com/", api_key=KEY, timeout=1.5)
    settings.check("ty")
    source = TyntecSource.from_settings("ty", settings, 8)
    assert (source.name, source.max_batch, source.timeout) == ("upstream:ty", 1, 1.5)
    asyncio.run(source.close())


@pytest.mark.parametrize(
    "url", ["https://api.tyntec.com/nis/v1/", "https://api.tyntec.com/nis/v1/gnv", "https://api.tyntec.com/?region=eu"]
)
def test_settings_refuse_the_specs_server_url_as_the_base(url: str) -> None:
    with pytest.raises(ValueError, match=r"upstreams\.ty\.url must be the API base"):
        TyntecSettings(url=url, api_key=KEY).check("ty")


# --------------------------------------------------------------- the peer refuses what tyntec refuses


@pytest.mark.parametrize(
    ("method", "target", "headers", "status", "title"),
    [
        ("GET", "/nis/v1/gnv?msisdn=%2B491622943176", {"apiKey": ""}, 403, "Authorization information is missing."),
        ("GET", "/nis/v1/gnv?msisdn=%2B491622943176", {"apiKey": "wrong"}, 401, "Invalid account credentials"),
        ("GET", "/nis/v1/gnv?msisdn=%2B491622943176", {"apiKey": "", "Authorization": f"Bearer {KEY}"}, 403, None),
        ("GET", "/nis/v1/gnv", {}, 400, "The given data were not parsable."),
        ("GET", "/nis/v1/gnv?msisdn=+491622943176", {}, 400, None),  # an unencoded "+" is a space
        ("GET", "/nis/v1/gnv?msisdn=%2B4916-229", {}, 400, None),
        ("GET", "/nis/v1/gnv?msisdn=%2B491622943176&msisdn=%2B491622943177", {}, 400, None),
        ("GET", "/nis/v1/gnv?msisdn=%2B491622943176&max_age=0", {}, 400, None),
        ("GET", "/nis/v1/gnv?msisdn=%2B491622943176&callbackUrl=ftp%3A%2F%2Fx", {}, 400, None),
        ("GET", "/nis/v1/gnp?msisdn=%2B491622943176", {}, 404, None),
        ("POST", "/nis/v1/gnv?msisdn=%2B491622943176", {}, 405, None),
        ("GET", "/nis/v1/gnv?msisdn=%2B491622943176", {"Accept": "text/html"}, 406, None),
    ],
)
def test_the_peer_refuses_like_tyntec(
    method: str, target: str, headers: dict[str, str], status: int, title: str | None
) -> None:
    with TyntecPeer(api_key=KEY) as peer, httpx.Client(base_url=peer.url) as client:
        sent = {name: value for name, value in {"apiKey": KEY, **headers}.items() if value}
        response = client.request(method, target, headers=sent)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == status
    if title is not None:
        assert response.json()["title"] == title
    assert peer.requests == [] and len(peer.refusals) == 1


def test_the_peer_takes_digits_without_plus_and_answers_a_callback_request_asynchronously() -> None:
    with TyntecPeer(api_key=KEY) as peer, httpx.Client(base_url=peer.url, headers={"apiKey": KEY}) as client:
        plain = client.get("/nis/v1/gnv", params={"msisdn": "491622943176"})
        later = client.get("/nis/v1/gnv", params={"msisdn": VODAFONE, "callbackUrl": "https://my.callback.io/gnv"})
    assert plain.status_code == 200 and plain.json()["msisdn"] == VODAFONE and plain.json()["presence"] == "true"
    assert later.status_code == 200 and later.json() == EXAMPLES["variants"]["asynchronous"]["body"]


# --------------------------------------------------------------- failures


def test_a_number_tyntec_calls_malformed_is_an_answer_that_cannot_tell() -> None:
    """The spec's 400 ("an error in MSISDN") concerns the number: no source failure, the next source is asked."""
    with TyntecPeer(api_key=KEY, malformed=frozenset({VODAFONE[1:]})) as peer:
        answers = query(peer, [VODAFONE, "+491622943177"])
    refused = answers[VODAFONE]
    assert (refused.reachable, refused.ported_known, refused.says_something) == (None, None, False)
    assert refused.error == "upstream:ty refused the number as malformed (HTTP 400)"
    assert answers["+491622943177"].reachable is True
    assert peer.refusals == [(400, "malformed")]


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("refuse", "upstream:ty refused the connection"),
        ("reset", "upstream:ty broke the connection"),
        ("hang", "upstream:ty timed out after 0.5 s"),
        ("garbage", "upstream:ty broke the connection"),
        ("http500", "upstream:ty had a server error (HTTP 500)"),
        ("http401", "upstream:ty rejected our credentials (HTTP 401)"),
        ("http402", "upstream:ty has no credits left for us (HTTP 402)"),
        ("http403", "upstream:ty rejected our credentials (HTTP 403)"),
        ("http429", "upstream:ty is rate limiting us (HTTP 429; retry after 7 s)"),
        ("badjson", "upstream:ty sent an answer that is not a GNV result"),
        ("badshape", "upstream:ty sent an answer that is not a GNV result"),
    ],
)
def test_each_failure_is_a_source_error_in_our_words(mode: str, reason: str) -> None:
    with TyntecPeer(api_key=KEY, mode=mode, retry_after=7) as peer:
        with pytest.raises(SourceError) as info:
            query(peer, [VODAFONE], timeout=0.5)
    assert str(info.value) == reason
    assert info.value.retry_after == (7.0 if mode == "http429" else None)
    assert KEY not in str(info.value) and KEY not in repr(info.value)
    for body in ERRORS.values():  # tyntec's own texts stay out
        assert not isinstance(body, dict) or body["title"] not in str(info.value)


@pytest.mark.parametrize(
    ("variant", "reason"),
    [
        ("another_number", "upstream:ty answered for another number"),
        ("asynchronous", "upstream:ty answered asynchronously; numlookup needs the synchronous answer"),
    ],
)
def test_an_answer_that_is_not_for_our_request_is_a_source_error(variant: str, reason: str) -> None:
    with TyntecPeer(api_key=KEY, default=variant) as peer:
        with pytest.raises(SourceError) as info:
            query(peer, [VODAFONE])
    assert str(info.value) == reason


def test_a_wrong_or_missing_key_is_refused_and_never_shown() -> None:
    wrong = "not-the-key-" + KEY[::-1]
    with TyntecPeer(api_key=KEY) as peer:
        with pytest.raises(SourceError, match=r"rejected our credentials \(HTTP 401\)") as info:
            query(peer, [VODAFONE], key=wrong)
        with pytest.raises(SourceError, match=r"rejected our credentials \(HTTP 403\)"):
            query(peer, [VODAFONE], key="")
    assert peer.refusals == [(401, "credentials"), (403, "no apiKey")]
    assert wrong not in str(info.value) and KEY not in str(info.value)


def test_a_wrong_base_url_is_a_refused_request() -> None:
    with TyntecPeer(api_key=KEY) as peer:
        with pytest.raises(SourceError) as info:
            query(peer, [VODAFONE], url=peer.url + "/nis/v1")  # /nis/v1/nis/v1/gnv
    assert str(info.value) == "upstream:ty refused the request (HTTP 404)"
    assert peer.refusals == [(404, "path /nis/v1/nis/v1/gnv")]


def test_the_fixture_names_the_source_of_every_example() -> None:
    for name, example in EXAMPLES["examples"].items():
        assert re.search(r"^[\w.-]+/[\w.-]+ \S+ @ [0-9a-f]{40}", example["_source"]), name  # repository path @ commit
    assert "5660f690aef0d06ec5a364f71e8b6a66df60d3ae" in EXAMPLES["errors"]["_source"]
    assert EXAMPLES["examples"]["gnv"]["result"]["msisdn"] == VODAFONE
