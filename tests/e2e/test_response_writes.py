"""A response's head goes out with its body in one write, and nothing a client waits for is held back.

``serving.HeadWithBody`` holds the status line and headers until the body's first
bytes. Over a real socket: a lookup's answer is whole and well-formed on a
keep-alive connection, one after another; an ``Expect: 100-continue`` client gets
its ``100 Continue`` before it sends the body (it is not held as a head would
be). With a transport that records its writes: the head and body are one write,
a head whose body does not follow in the same loop turn goes out alone at the
next, and closing writes a held head first.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from numlookup.serving import HeadWithBody
from tests.e2e.conftest import Live, start_live

BODY = b'{"numbers":["+37251000001","+4915112345678"]}'
SOCKET_TIMEOUT_S = 30  # a hang guard, not a measure


@pytest.fixture(scope="module")
def writes_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    yield from start_live(tmp_path_factory.mktemp("writes"), env={"NUMLOOKUP_RATE_LIMIT_PER_IP": "0"})


def _request(live: Live, *, expect_continue: bool = False) -> tuple[bytes, bytes]:
    creds = live.account()
    token = base64.b64encode(f"{creds.api_username}:{creds.api_password}".encode()).decode()
    head = (
        "POST /v1/hlr/sync HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"Authorization: Basic {token}\r\nContent-Length: {len(BODY)}\r\n"
        + ("Expect: 100-continue\r\n" if expect_continue else "")
        + "\r\n"
    )
    return head.encode(), BODY


def _read_response(sock: socket.socket, buffered: bytes = b"") -> tuple[bytes, dict[str, str], bytes, bytes]:
    """One response: status line, headers (lower-cased names), body by Content-Length, and what came after it."""
    data = buffered
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed before the head was complete: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = {k.decode().lower(): v.decode() for k, _, v in (line.partition(b": ") for line in lines)}
    length = int(headers["content-length"])
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "the connection closed before the body was complete"
        rest += chunk
    return status, headers, rest[:length], rest[length:]


def test_lookups_on_one_connection_are_answered_whole(writes_live: Live) -> None:
    head, body = _request(writes_live)
    with socket.create_connection((writes_live.server.host, writes_live.server.port), SOCKET_TIMEOUT_S) as sock:
        leftover = b""
        ids = set()
        for _ in range(5):
            sock.sendall(head + body)
            status, headers, answer, leftover = _read_response(sock, leftover)
            assert status == b"HTTP/1.1 200 OK"
            assert headers["content-type"] == "application/json"
            decoded: dict[str, Any] = json.loads(answer)
            assert [item["number"] for item in decoded["result"]] == ["+37251000001", "+4915112345678"]
            assert decoded["request_id"] == headers["x-request-id"]
            ids.add(headers["x-request-id"])
        assert leftover == b"" and len(ids) == 5


def test_a_100_continue_is_sent_before_the_body_is(writes_live: Live) -> None:
    head, body = _request(writes_live, expect_continue=True)
    with socket.create_connection((writes_live.server.host, writes_live.server.port), SOCKET_TIMEOUT_S) as sock:
        sock.sendall(head)
        interim = b""
        while b"\r\n\r\n" not in interim:
            chunk = sock.recv(65536)
            assert chunk, "the connection closed before 100 Continue"
            interim += chunk
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        status, _headers, answer, _ = _read_response(sock, interim[len(b"HTTP/1.1 100 Continue\r\n\r\n") :])
        assert status == b"HTTP/1.1 200 OK"
        assert len(json.loads(answer)["result"]) == 2


class _Recorded:
    """A transport that keeps what is written to it, one entry per write."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


class _Cycle:
    response_started = False


def _coalescing() -> tuple[HeadWithBody, _Recorded, _Cycle]:
    transport, cycle = _Recorded(), _Cycle()
    return HeadWithBody(transport, cycle, asyncio.get_running_loop()), transport, cycle  # type: ignore[arg-type]  # the parts HeadWithBody uses


def test_the_head_and_the_body_are_one_write_and_a_lone_head_goes_out_at_the_next_turn() -> None:
    async def scenario() -> None:
        coalesced, transport, cycle = _coalescing()
        coalesced.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # before the response starts: at once
        assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
        cycle.response_started = True
        coalesced.write(b"HEAD\r\n\r\n")
        assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
        coalesced.write(b"body")
        coalesced.write(b"more")  # a later chunk: as written
        assert transport.writes[1:] == [b"HEAD\r\n\r\nbody", b"more"]
        await asyncio.sleep(0)
        assert transport.writes[1:] == [b"HEAD\r\n\r\nbody", b"more"]  # nothing left to release

        streamed, transport, cycle = _coalescing()
        cycle.response_started = True
        streamed.write(b"HEAD\r\n\r\n")
        await asyncio.sleep(0)  # the body is still on its way: the head goes out alone
        assert transport.writes == [b"HEAD\r\n\r\n"]
        streamed.write(b"chunk")
        assert transport.writes == [b"HEAD\r\n\r\n", b"chunk"]

        closing, transport, cycle = _coalescing()
        cycle.response_started = True
        closing.write(b"HEAD\r\n\r\n")
        closing.close()
        assert transport.writes == [b"HEAD\r\n\r\n"] and transport.closed
        await asyncio.sleep(0)
        assert transport.writes == [b"HEAD\r\n\r\n"]

    asyncio.run(scenario())
