"""The dispatcher's batches against a real peer: at once while the source is idle, full batches while it is busy.

A source with ``hold_after`` requests in flight gets full batches; a part batch
goes when a slot frees below ``hold_after`` or once ``hold_seconds`` have
passed; an idle source gets every number at once.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from numlookup.live.breaker import CircuitBreaker
from numlookup.live.dispatcher import Dispatcher, Outcome
from numlookup.live.messente import MessenteSource
from numlookup.metrics import Metrics
from tests.peers.messente import Peer

NUMBERS = [f"+3725100{i:04d}" for i in range(13)]


def dispatcher(peer: Peer, max_concurrency: int, max_batch: int, hold_seconds: float) -> Dispatcher:
    source = MessenteSource("up", peer.url, "u", "p", max_batch=max_batch, timeout=30.0)
    breaker = CircuitBreaker(source.name, 5, 10.0)
    return Dispatcher(
        source, breaker, Metrics(), max_concurrency=max_concurrency, guard_seconds=30.0, hold_seconds=hold_seconds
    )


def sizes(peer: Peer) -> list[int]:
    return [len(body["numbers"]) for body in peer.requests]


async def until(check: Callable[[], bool]) -> None:
    for _ in range(1200):  # a bound on waiting, not a measured time
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("gave up waiting")


def test_a_busy_source_gets_full_batches_and_the_rest_once_a_slot_frees() -> None:
    gate = threading.Event()

    async def run(peer: Peer) -> tuple[int, list[int], list[int], list[Outcome]]:
        lane = dispatcher(peer, max_concurrency=8, max_batch=5, hold_seconds=3600)  # busy from 1 in flight on
        try:
            futures = [lane.submit(NUMBERS[0])]
            await until(lambda: peer.hits == 1)  # the first number is at the peer: the source is busy now
            for number in NUMBERS[1:]:  # one number per loop turn, as requests arriving one by one
                futures.append(lane.submit(number))
                await asyncio.sleep(0)
            await until(lambda: peer.hits == 3)
            held = sizes(peer)  # two full batches out; the last two numbers wait
            gate.set()  # the requests in flight are answered: below hold_after, the part batch goes
            outcomes = list(await asyncio.gather(*futures))
            return lane.hold_after, held, sizes(peer), outcomes
        finally:
            gate.set()
            await lane.close()

    with Peer(gate=gate) as peer:
        hold_after, held, sent, outcomes = asyncio.run(run(peer))
        asked = [n for body in peer.requests for n in body["numbers"]]
    assert hold_after == 1
    assert held == [1, 5, 5]
    assert sent == [1, 5, 5, 2]
    assert asked == NUMBERS  # in the order they came
    assert all(o.answer is not None and o.answer.reachable for o in outcomes)


def test_a_part_batch_goes_once_the_hold_has_ended_though_the_source_is_still_busy() -> None:
    gate = threading.Event()

    async def run(peer: Peer) -> list[int]:
        lane = dispatcher(peer, max_concurrency=8, max_batch=5, hold_seconds=0.05)
        try:
            futures = [lane.submit(NUMBERS[0])]
            await until(lambda: peer.hits == 1)
            futures += [lane.submit(n) for n in NUMBERS[1:3]]
            await until(lambda: peer.hits == 2)  # while the first is still held at the peer
            sent = sizes(peer)
            gate.set()
            await asyncio.gather(*futures)
            return sent
        finally:
            gate.set()
            await lane.close()

    with Peer(gate=gate) as peer:
        assert asyncio.run(run(peer)) == [1, 2]


def test_an_idle_source_gets_each_number_at_once() -> None:
    gate = threading.Event()

    async def run(peer: Peer) -> list[int]:
        lane = dispatcher(peer, max_concurrency=64, max_batch=5, hold_seconds=3600)  # busy from 8 in flight on
        try:
            futures = []
            for number in NUMBERS[:7]:  # one per loop turn: each goes out on its own, no waiting for a batch
                futures.append(lane.submit(number))
                await asyncio.sleep(0)
            await until(lambda: peer.hits == 7)
            sent = sizes(peer)
            gate.set()
            await asyncio.gather(*futures)
            return sent
        finally:
            gate.set()
            await lane.close()

    with Peer(gate=gate) as peer:
        assert asyncio.run(run(peer)) == [1] * 7


def test_after_a_full_batch_the_rest_waits_a_hold_of_its_own() -> None:
    """A full batch took the numbers the hold was set for: the one left over waits its own hold, not their rest.

    (The timer set for the first part batch used to stay armed, and sent the
    number that came later at once when it fired.) The margins are wide: the
    check is which batches went by a point in time, with seconds to spare.
    """
    gate = threading.Event()

    async def run(peer: Peer) -> tuple[list[int], list[int]]:
        lane = dispatcher(peer, max_concurrency=8, max_batch=5, hold_seconds=2.0)  # busy from 1 in flight on
        try:
            futures = [lane.submit(NUMBERS[0])]
            await until(lambda: peer.hits == 1)  # the source is busy now
            futures += [lane.submit(n) for n in NUMBERS[1:3]]  # held: a hold of 2 s starts for them
            await asyncio.sleep(1.0)
            futures += [lane.submit(n) for n in NUMBERS[3:7]]  # a full batch of 5 goes; the 6th waits
            await until(lambda: peer.hits == 2)
            await asyncio.sleep(1.3)  # past the first hold's end, well before the 6th number's own
            early = sizes(peer)
            await until(lambda: peer.hits == 3)  # its own hold ends: it goes alone
            gate.set()
            await asyncio.gather(*futures)
            return early, sizes(peer)
        finally:
            gate.set()
            await lane.close()

    with Peer(gate=gate) as peer:
        early, sent = asyncio.run(run(peer))
    assert early == [1, 5]
    assert sent == [1, 5, 1]


def test_the_hold_grows_with_a_slow_sources_latency() -> None:
    async def run(peer: Peer) -> tuple[float, float | None, float]:
        lane = dispatcher(peer, max_concurrency=8, max_batch=5, hold_seconds=0.02)
        try:
            before = lane.hold_for()
            outcome = await lane.submit(NUMBERS[0])
            assert outcome.answer is not None and outcome.answer.reachable
            return before, lane.latency, lane.hold_for()
        finally:
            await lane.close()

    with Peer(delay=0.4) as peer:
        before, latency, after = asyncio.run(run(peer))
    assert before == 0.02  # nothing measured yet: the configured hold
    assert latency is not None and latency >= 0.4  # the peer answers after 0.4 s
    assert after == latency / 8
