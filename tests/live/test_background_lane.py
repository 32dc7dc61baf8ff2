"""The dispatcher's lane for bulk jobs, against a real peer: jobs get at most their share, sync numbers go first."""

from __future__ import annotations

import asyncio

from numlookup.live.breaker import CircuitBreaker
from numlookup.live.dispatcher import Dispatcher, Outcome
from numlookup.live.messente import MessenteSource
from numlookup.metrics import Metrics
from tests.peers.messente import Peer

JOB = [f"+3725100{i:04d}" for i in range(12)]
SYNC = [f"+3725200{i:04d}" for i in range(3)]


def dispatcher(peer: Peer, background_limit: int) -> Dispatcher:
    source = MessenteSource("up", peer.url, "u", "p", max_batch=1, timeout=5.0)
    return Dispatcher(
        source,
        CircuitBreaker(source.name, 5, 10.0),
        Metrics(),
        max_concurrency=3,
        guard_seconds=10.0,
        background_limit=background_limit,
    )


def asked(peer: Peer) -> list[str]:
    return [number for body in peer.requests for number in body["numbers"]]


def test_jobs_get_their_share_and_sync_numbers_go_first() -> None:
    async def run(peer: Peer) -> tuple[list[Outcome], list[Outcome], int]:
        lane = dispatcher(peer, background_limit=1)
        try:
            jobs = [lane.submit(n, background=True) for n in JOB]
            await asyncio.sleep(0.05)  # the first job number is out; the others wait their turn
            most = lane._background_running
            sync = await asyncio.gather(*(lane.submit(n) for n in SYNC))
            return sync, list(await asyncio.gather(*jobs)), most
        finally:
            await lane.close()

    with Peer(delay=0.2) as peer:
        sync, jobs, in_flight = asyncio.run(run(peer))
        order = asked(peer)
    assert in_flight == 1  # one slot of three for the job, though the source had room for more
    assert all(o.answer is not None and o.answer.reachable for o in [*sync, *jobs])
    assert sorted(order) == sorted(JOB + SYNC)
    # The sync numbers came after the job's first number, and before all the job's others.
    assert set(order[1:4]) == set(SYNC)
    assert order[0] == JOB[0] and order[4:] == JOB[1:]


def test_a_sync_request_takes_a_number_a_job_queued_to_the_front() -> None:
    async def run(peer: Peer) -> tuple[Outcome, Outcome]:
        lane = dispatcher(peer, background_limit=1)
        try:
            jobs = [lane.submit(n, background=True) for n in JOB]
            await asyncio.sleep(0.05)
            wanted = JOB[-1]  # the last the job would have got to
            sync = await lane.submit(wanted)
            await asyncio.gather(*jobs)
            return sync, await jobs[-1]
        finally:
            await lane.close()

    with Peer(delay=0.2) as peer:
        sync, job = asyncio.run(run(peer))
        order = asked(peer)
    assert sync is job  # one query, shared: the job's number was answered once
    assert order.count(JOB[-1]) == 1 and order.index(JOB[-1]) == 1  # right after the number already out
