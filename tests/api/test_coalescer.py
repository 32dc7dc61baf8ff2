"""Requests of one event-loop turn share one resolver call, and get exactly what a call of their own gives."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from numlookup.api.coalescer import ResolveCoalescer
from numlookup.numbering import Resolver


@pytest.fixture(scope="module")
def resolver() -> Resolver:
    return Resolver()


REQUESTS = [
    ["+37251000001"],
    ["+358401234567", "+4915112345678", "+358401234567"],
    ["not a number"],
    ["+447912345678", "+2348031234567"],
    ["+800 1234 5678"],
]


def test_one_turn_one_batch_same_answers(resolver: Resolver) -> None:
    coalescer = ResolveCoalescer(resolver)

    async def burst() -> list[Any]:
        return await asyncio.gather(*(coalescer.resolve(numbers) for numbers in REQUESTS))

    got = asyncio.run(burst())
    assert got == [resolver.resolve(numbers) for numbers in REQUESTS]
    assert (coalescer.batches, coalescer.requests) == (1, len(REQUESTS))


def test_a_failing_request_does_not_fail_the_others(resolver: Resolver) -> None:
    coalescer = ResolveCoalescer(resolver)
    broken: list[Any] = [None]  # not a string: the resolver raises for it

    async def burst() -> list[Any]:
        calls = [coalescer.resolve(REQUESTS[0]), coalescer.resolve(broken), coalescer.resolve(REQUESTS[3])]
        return await asyncio.gather(*calls, return_exceptions=True)

    first, failure, last = asyncio.run(burst())
    assert isinstance(failure, Exception)
    assert first == resolver.resolve(REQUESTS[0])
    assert last == resolver.resolve(REQUESTS[3])


def test_a_cancelled_request_leaves_the_batch_intact(resolver: Resolver) -> None:
    coalescer = ResolveCoalescer(resolver)

    async def burst() -> Any:
        gone = asyncio.ensure_future(coalescer.resolve(REQUESTS[1]))
        kept = asyncio.ensure_future(coalescer.resolve(REQUESTS[3]))
        await asyncio.sleep(0)  # both have joined the waiting batch
        gone.cancel()
        return await kept

    assert asyncio.run(burst()) == resolver.resolve(REQUESTS[3])


def test_one_coalescer_serves_one_loop_after_another_and_loops_of_other_threads(resolver: Resolver) -> None:
    """The loop it remembers (``get_running_loop`` is asked once per loop) is never another thread's or a closed one."""
    coalescer = ResolveCoalescer(resolver)
    expected = [resolver.resolve(numbers) for numbers in REQUESTS]

    async def burst() -> list[Any]:
        return await asyncio.wait_for(asyncio.gather(*(coalescer.resolve(n) for n in REQUESTS)), timeout=10)

    assert asyncio.run(burst()) == expected
    assert asyncio.run(burst()) == expected  # a new loop in the same thread: the first one is closed

    other: list[object] = []
    started, release = threading.Event(), threading.Event()

    async def held_open() -> None:  # another thread's loop, running while this thread's loop asks
        other.append(await burst())
        started.set()
        while not release.is_set():
            await asyncio.sleep(0.01)
        other.append(await burst())

    thread = threading.Thread(target=asyncio.run, args=(held_open(),))
    thread.start()
    try:
        assert started.wait(10)
        assert asyncio.run(burst()) == expected
    finally:
        release.set()
        thread.join(10)
    assert other == [expected, expected]
