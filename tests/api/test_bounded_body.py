"""The guard's body reader: a body already read comes back untimed, one still on its way under the deadline.

The reader steps the server's ``receive`` once and only puts the rest under
``asyncio.timeout`` when it has to wait; these check that the rest behaves as a
plain ``await`` would: its result, its errors, its cancellation, its deadline.
(tests/e2e/test_abuse.py sends slow bodies to a real server.)
"""

from __future__ import annotations

import asyncio

import pytest
from starlette.types import Message

from numlookup.api.errors import ApiError
from numlookup.api.limits import BoundedBody

BODY: Message = {"type": "http.request", "body": b'{"numbers":["+37251000001"]}', "more_body": False}


def run(reader: BoundedBody) -> Message:
    return asyncio.run(reader.receive())


def test_a_body_already_read_is_answered_at_once() -> None:
    async def receive() -> Message:
        return BODY

    reader = BoundedBody(receive, limit=1000, timeout=5.0, expected=True)
    assert run(reader) == BODY
    assert reader.complete and reader.received == len(BODY["body"])


def test_a_body_that_comes_within_the_deadline_is_answered() -> None:
    async def scenario() -> Message:
        arrived = asyncio.Event()

        async def receive() -> Message:
            await arrived.wait()
            await asyncio.sleep(0)  # a second wait: the rest is awaited to its end
            return BODY

        asyncio.get_running_loop().call_later(0.01, arrived.set)
        return await BoundedBody(receive, limit=1000, timeout=5.0, expected=True).receive()

    assert asyncio.run(scenario()) == BODY


def test_a_body_that_does_not_come_is_a_408_and_the_wait_is_cancelled() -> None:
    cancelled: list[bool] = []

    async def receive() -> Message:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return BODY

    with pytest.raises(ApiError) as refused:
        run(BoundedBody(receive, limit=1000, timeout=0.05, expected=True))
    assert refused.value.http_status == 408
    assert "did not arrive within 0.05 s" in refused.value.description
    assert cancelled == [True]


def test_an_error_of_the_servers_receive_after_a_wait_is_raised_as_it_is() -> None:
    async def receive() -> Message:
        await asyncio.sleep(0.01)
        raise ConnectionResetError("gone")

    with pytest.raises(ConnectionResetError, match="gone"):
        run(BoundedBody(receive, limit=1000, timeout=5.0, expected=True))


def test_cancelling_the_request_reaches_the_servers_receive() -> None:
    async def scenario() -> list[str]:
        seen: list[str] = []

        async def receive() -> Message:
            try:
                await asyncio.sleep(60)
            except asyncio.CancelledError:
                seen.append("cancelled")
                raise
            return BODY

        task = asyncio.create_task(BoundedBody(receive, limit=1000, timeout=5.0, expected=True).receive())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return seen

    assert asyncio.run(scenario()) == ["cancelled"]


def test_a_body_over_the_limit_is_a_413_whether_or_not_it_waited() -> None:
    async def at_once() -> Message:
        return BODY

    async def later() -> Message:
        await asyncio.sleep(0.01)
        return BODY

    for receive in (at_once, later):
        with pytest.raises(ApiError) as refused:
            run(BoundedBody(receive, limit=10, timeout=5.0, expected=True))
        assert refused.value.http_status == 413


def test_a_body_taken_whole_is_counted_and_limited_as_its_message_would_be() -> None:
    """``take`` (the plain path's body that has arrived) against ``receive`` of the same body."""

    async def never() -> Message:
        raise AssertionError("a body taken whole is not received")

    body = BODY["body"]
    taken = BoundedBody(never, limit=1000, timeout=5.0, expected=True)
    assert taken.take(body) == body
    assert taken.complete and taken.received == len(body)
    for limit in (len(body) - 1, 10):
        with pytest.raises(ApiError) as refused:
            BoundedBody(never, limit=limit, timeout=5.0, expected=True).take(body)
        with pytest.raises(ApiError) as received:
            run(BoundedBody(lambda: asyncio.sleep(0, BODY), limit=limit, timeout=5.0, expected=True))
        assert refused.value.http_status == received.value.http_status == 413
        assert refused.value.body() == received.value.body()
    exact = BoundedBody(never, limit=len(body), timeout=5.0, expected=True)
    assert exact.take(body) == body  # at the limit is within it, as for a message
