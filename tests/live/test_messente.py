"""The upstream source against a real HTTP peer on 127.0.0.1, well-behaved and misbehaving."""

from __future__ import annotations

import asyncio
import time

import pytest

from numlookup.live.messente import MessenteSource
from numlookup.live.source import LiveAnswer, SourceError
from numlookup.status import reachability
from tests.peers.messente import Peer

NUMBERS = [f"+3725100000{i}" for i in range(10)] + ["+37251000010", "+37251000011"]


def query(
    peer: Peer, numbers: list[str], *, timeout: float = 2.0, password: str = "secret", **kw: object
) -> dict[str, LiveAnswer]:
    async def run() -> dict[str, LiveAnswer]:
        source = MessenteSource("up", peer.url, "us", password, timeout=timeout, **kw)  # type: ignore[arg-type]  # MessenteSource's keywords, passed through
        try:
            return await source.query(numbers)
        finally:
            await source.close()

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("ONLINE", True),
        ("ON", True),
        ("true", True),
        (True, True),
        ("OFFLINE", False),
        ("OFF", False),
        ("false", False),
        ("UNKNOWN", None),
        ("INVALID", None),
        ("maybe", None),
        (None, None),
    ],
)
def test_every_status_vocabulary_maps_back(word: str | bool | None, expected: bool | None) -> None:
    assert reachability(word) is expected


def test_batches_of_the_upstream_limit_with_our_credentials() -> None:
    statuses = {NUMBERS[0]: "OFF", NUMBERS[1]: "false", NUMBERS[2]: "UNKNOWN", NUMBERS[3]: "true"}
    with Peer(
        statuses=statuses,
        default_status="ON",
        credentials=("us", "secret"),
        roaming={NUMBERS[4]: "24405"},
        ported={NUMBERS[5]: "24803"},
    ) as peer:
        answers = query(peer, NUMBERS, max_batch=5)
    assert sorted(len(r["numbers"]) for r in peer.requests) == [2, 5, 5]
    assert set(answers) == set(NUMBERS)
    assert [answers[n].reachable for n in NUMBERS[:4]] == [False, False, None, True]
    assert answers[NUMBERS[2]].error
    assert answers[NUMBERS[4]].roaming is True and answers[NUMBERS[4]].roaming_mccmnc == "24405"
    assert answers[NUMBERS[5]].ported_mccmnc == "24803"
    assert all(a.checked_at is not None for a in answers.values())


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("refuse", "refused the connection"),
        ("reset", "broke the connection"),
        ("hang", "timed out"),
        ("garbage", "broke the connection"),
        ("http500", "server error (HTTP 500)"),
        ("http401", "rejected our credentials (HTTP 401)"),
        ("badjson", "not a Number Lookup result"),
        ("deepjson", "not a Number Lookup result"),
    ],
)
def test_each_failure_is_a_source_error_with_its_reason(mode: str, reason: str) -> None:
    with Peer(mode=mode) as peer:
        started = time.monotonic()
        with pytest.raises(SourceError, match="upstream:up") as info:
            query(peer, NUMBERS[:2], timeout=0.5)
        elapsed = time.monotonic() - started
    assert reason in str(info.value)
    assert elapsed < 2.0


def test_wrong_password_is_a_source_error() -> None:
    with Peer(credentials=("us", "secret")) as peer, pytest.raises(SourceError, match="HTTP 401"):
        query(peer, NUMBERS[:1], password="wrong")


def test_porting_facts_are_what_the_upstream_says_of_the_current_network() -> None:
    """Ported: its ported network. Not ported, with its current network: that network. Otherwise nothing."""
    moved, home, silent = NUMBERS[:3]
    with Peer(ported={moved: "24802"}, home={home: "24801"}) as peer:
        answers = query(peer, [moved, home, silent])
    assert [answers[n].ported_mccmnc for n in (moved, home, silent)] == ["24802", "24801", None]


# What an upstream says about a number it could not tell, and what our client reads.
UPSTREAM_WORDS = [
    ("Absent Subscriber", "Absent Subscriber"),  # a subscriber state: passed on
    ("  absent   SUBSCRIBER ", "Absent Subscriber"),
    ("Unknown Subscriber; prefix based response used", "Unknown Subscriber"),  # a numlookup upstream's suffix
    # A chained numlookup's own words name its sources; a provider's, its internals.
    (
        "Live lookup failed: upstream:hlr-core timed out after 3 s; prefix based response used",
        "upstream:up could not tell (its lookup timed out)",
    ),
    ("Live lookup timed out; prefix based response used", "upstream:up could not tell (its lookup timed out)"),
    (
        "Live lookup failed: upstream:hlr-core refused the connection; prefix based response used",
        "upstream:up could not tell (its lookup was refused)",
    ),
    (
        "Live lookup failed: upstream:hlr-core is unavailable (circuit open after repeated failures); "
        "prefix based response used",
        "upstream:up could not tell (its source is unavailable)",
    ),
    ("node hlr-7.core.internal: MAP error 34 (SystemFailure)", "upstream:up could not tell (its lookup failed)"),
    ("upstream:hlr-core could not tell; prefix based response used", "upstream:up could not tell"),
    ("Absent Subscriber at VLR 3725099 (tallinn-2)", "upstream:up could not tell"),  # a state with more: not passed
    ("", "upstream:up could not tell"),
]


@pytest.mark.parametrize(("said", "told"), UPSTREAM_WORDS)
def test_an_upstreams_words_reach_our_clients_only_from_the_allow_list(said: str, told: str) -> None:
    number = NUMBERS[0]
    with Peer(statuses={number: "UNKNOWN"}, errors={number: said}) as peer:
        [answer] = query(peer, [number]).values()
    assert answer.reachable is None and answer.error == told
    for internal in ("hlr-core", "hlr-7", "tallinn", "SystemFailure", "MAP"):
        assert internal not in told


@pytest.mark.parametrize(
    ("status", "told"),
    [
        ("INVALID", "upstream:up answered INVALID"),
        ("HLR_NODE_7_DOWN", "upstream:up answered a status word numlookup does not know"),
        (None, "upstream:up could not tell"),
    ],
)
def test_a_status_word_we_do_not_read_is_not_repeated(status: str | None, told: str) -> None:
    number = NUMBERS[0]
    with Peer(statuses={number: status}, errors={number: "internal node 7"}) as peer:
        [answer] = query(peer, [number]).values()
    assert answer.reachable is None and answer.error == told


def test_a_reachable_answer_carries_no_upstream_text() -> None:
    number = NUMBERS[0]
    with Peer(statuses={number: "OFFLINE"}, errors={number: "detached at hlr-7.core.internal"}) as peer:
        [answer] = query(peer, [number]).values()
    assert answer.reachable is False and answer.error is None
