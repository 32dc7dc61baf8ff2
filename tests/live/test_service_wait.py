"""``LiveService``'s wait for a request's numbers (``service._wait_until``) against ``asyncio.wait``: the same done.

Both are given the same futures, answered at the same loop times, and the
same deadline; each must return at the same point: every future done, or the
deadline reached with the same ones still pending.
"""

from __future__ import annotations

import asyncio

import pytest

from numlookup.live.dispatcher import Outcome
from numlookup.live.service import _wait_until


async def settle_at(futures: list[asyncio.Future[Outcome]], delays: list[float]) -> list[bool]:
    loop = asyncio.get_running_loop()
    for future, delay in zip(futures, delays, strict=True):
        if delay == 0:
            future.set_result(Outcome(None, "at once"))
        elif delay > 0:
            loop.call_later(delay, future.set_result, Outcome(None, "later"))
    return [f.done() for f in futures]


@pytest.mark.parametrize(
    ("delays", "budget"),
    [
        ([0.05, 0.1, 0.0], 5.0),  # all answered before the deadline
        ([0.05, -1, 3.0], 0.5),  # one never, one after the deadline
        ([0.0, 0.0], 5.0),  # every one done already
        ([0.05], 0.0),  # no time left
        ([], 1.0),
    ],
)
def test_the_same_futures_are_done_when_each_wait_returns(delays: list[float], budget: float) -> None:
    async def run(wait_here: bool) -> tuple[list[bool], bool]:
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[Outcome]] = [loop.create_future() for _ in delays]
        await settle_at(futures, delays)
        started = loop.time()
        ends = started + budget
        if wait_here:
            await _wait_until(futures, ends)
        elif futures:
            await asyncio.wait(futures, timeout=max(0.0, ends - loop.time()))
        before_deadline = loop.time() < ends
        return [f.done() for f in futures], before_deadline or not futures

    reference, ours = asyncio.run(run(False)), asyncio.run(run(True))
    assert ours == reference
