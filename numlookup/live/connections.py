"""The live sources' HTTP/1.1 connections: asyncio protocols whose answers httptools parses, kept alive in a pool.

Why not httpcore's pools (what ``live.http`` sent through before): under
bench/live.py's burst the event loop sends 100 upstream requests and reads
their answers in the same few milliseconds as it answers 1,000 clients, so each
request's CPU is latency for all of them. Through httpcore a request cost the
loop about 400 µs (bench/live_http.py): its pool's locks, events and
assignment of requests to connections, h11's pure-Python parsing and its state
machine, two writes (head, then body), and the response's byte stream and its
closing, each an ``await`` through several layers. Here a request is one
``transport.write`` of the head and body, and the answer is parsed in C as it
arrives (httptools, which uvicorn already serves with), settling one future.

What a request sends is the head httpx builds (``live.http``); what comes back
is the status, the raw headers and the body, de-chunked, for httpx's
``Response`` to decode as its client does. tests/live/test_http.py holds the
bytes each way equal to httpx's own client's.

Connections: at most ``limit`` open at once, idle ones reused most recently
used first (sequential requests keep one warm connection; concurrent ones get
one each), a request over the limit waits for one to be handed back. An idle
connection the server closed, spoke on out of turn, or left idle longer than
``keepalive`` is dropped, not reused (its socket is polled before reuse, so
a close already in the kernel but not yet seen by the loop counts). A response
that ends the connection (``Connection: close``, or a body delimited by the
close) leaves it closed, and so do bytes past the answer read with its end:
the parser would take them for the start of the next request's answer.
Timeouts follow httpx's: ``timeout`` for a connection to become free, to
connect (and the TLS handshake), and between any two pieces of an answer.
"""

from __future__ import annotations

import asyncio
import select
import ssl
from collections import deque
from typing import Any, cast

import httptools

Origin = tuple[str, str, int]  # scheme, host, port
Header = tuple[bytes, bytes]


class HttpFailure(Exception):
    """A request that got no whole answer; ``kind`` says how (the caller words it for clients)."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(detail or kind)
        self.kind = kind  # "timeout", "connect", "broken" or "protocol"


class Answer:
    """A whole response: its status, reason phrase, raw headers as received, and body (de-chunked, not decoded)."""

    __slots__ = ("body", "headers", "reason", "status")

    def __init__(self, status: int, reason: bytes, headers: list[Header], body: bytes) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body


class Connection(asyncio.Protocol):
    """One HTTP/1.1 connection, one request at a time; httptools calls the ``on_*`` methods as it parses."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[Answer] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timeout = 0.0
        self._last = 0.0  # loop time the request went out, or the last piece of its answer came
        self._reset()

    def _reset(self) -> None:
        self._reason = b""
        self._headers: list[Header] = []
        self._body: list[bytes] = []
        self._headed = False
        self._framed = False  # the answer states its length (Content-Length or chunked): it does not end at the close

    # ------------------------------------------------------------------ asyncio's calls

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports are not asyncio's classes

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:  # spoken to out of turn: what the server meant is unknowable, so no reuse
            self.close()
            return
        loop = self._waiter.get_loop()
        self._last = loop.time()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpFailure("protocol", f"malformed answer ({exc})"))
            self.close()

    def eof_received(self) -> bool:
        self._ended()
        return False  # close the transport: HTTP/1.1 has no use for a half-closed connection

    def connection_lost(self, exc: Exception | None) -> None:
        self._ended()

    def _ended(self) -> None:
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        if self._headed and not self._framed:  # the body ran until the close: the answer is whole
            self.on_message_complete()
        else:
            self._fail(HttpFailure("broken", "the connection closed before the answer was whole"))

    # ------------------------------------------------------------------ httptools' calls

    def on_message_begin(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():  # more after the whole answer, in the same read: never reused
            self.close()  # (else the next request's answer would be read as the rest of this one)

    def on_status(self, status: bytes) -> None:
        self._reason += status

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._headed = True
        for name, value in self._headers:
            lowered = name.lower()
            if lowered == b"content-length" or (lowered == b"transfer-encoding" and b"chunked" in value.lower()):
                self._framed = True
        status = self._parser.get_status_code()
        if status in (204, 304) or 100 <= status < 200:
            self._framed = True  # no body, whatever the headers say

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        status = self._parser.get_status_code()
        if 100 <= status < 200 and status != 101:  # informational (100 Continue): the answer proper follows
            self._reset()
            return
        answer = Answer(status, self._reason, self._headers, b"".join(self._body))
        if not self._parser.should_keep_alive() or not self._framed:
            self.close()
        self._reset()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(answer)

    # ------------------------------------------------------------------ ours

    async def request(self, data: bytes, timeout: float) -> Answer:
        """Send ``data`` (a request's head and body) and wait for the whole answer, ``timeout`` between its pieces."""
        transport = self.transport
        if self.closed or transport is None or transport.is_closing():
            raise HttpFailure("broken", "the connection is closed")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[Answer] = loop.create_future()
        self._waiter = waiter
        self._timeout = timeout
        self._last = loop.time()
        self._timer = loop.call_at(self._last + timeout, self._check_time)
        transport.write(data)
        try:
            return await waiter
        finally:
            self._waiter = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            if not waiter.done() or waiter.cancelled():  # given up mid-answer: the rest would confuse the next
                self.close()

    def _check_time(self) -> None:
        """Fail the request if nothing came for ``timeout``; else look again that long after the last piece."""
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        due = self._last + self._timeout
        loop = waiter.get_loop()
        if loop.time() >= due:
            self._fail(HttpFailure("timeout", "timed out reading the answer"))
            self.close()
        else:
            self._timer = loop.call_at(due, self._check_time)

    def _fail(self, failure: HttpFailure) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(failure)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def reusable(self, now: float, keepalive: float) -> bool:
        """Idle, open, within its keep-alive, and nothing waiting to be read (a close the loop has not yet seen)."""
        transport = self.transport
        if self.closed or transport is None or transport.is_closing() or now - self.idle_since >= keepalive:
            return False
        return not _socket_readable(transport.get_extra_info("socket"))


class Pool:
    """Up to ``limit`` connections to any origins; an idle one is reused most recently used first."""

    def __init__(self, limit: int, keepalive: float, tls: ssl.SSLContext) -> None:
        self.limit = max(1, limit)
        self.keepalive = keepalive
        self.tls = tls
        self.opened = 0  # connections made (or being made) and not yet dropped
        self._idle: dict[Origin, list[Connection]] = {}
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._all: set[Connection] = set()
        self._closes = 0  # how often close() ran: a connection being made across one is closed, not kept

    async def send(self, origin: Origin, data: bytes, timeout: float) -> Answer:
        """``data`` on a connection to ``origin`` (a free one, else a new one, else the next handed back)."""
        connection = await self._acquire(origin, timeout)
        try:
            answer = await connection.request(data, timeout)
        finally:
            self._release(connection)
        return answer

    async def _acquire(self, origin: Origin, timeout: float) -> Connection:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            idle = self._idle.get(origin)
            now = loop.time()
            while idle:
                connection = idle.pop()
                if connection.reusable(now, self.keepalive):
                    return connection
                self._drop(connection)
            if self.opened < self.limit or self._drop_idle():
                self.opened += 1
                try:
                    return await self._connect(origin, deadline - loop.time())
                except BaseException:
                    self.opened -= 1
                    self._wake()
                    raise
            await self._wait(deadline)

    async def _wait(self, deadline: float) -> None:
        """Until a connection is handed back (or dropped), or the deadline: then httpx's pool timeout."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiting.append(waiter)
        timer = loop.call_at(deadline, _expire, waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                self._wake()  # we were handed a turn we will not take: the next waiter takes it
            raise
        finally:
            timer.cancel()

    def _drop_idle(self) -> bool:
        """At the limit: close an idle connection of another origin (or a dead one) to make room; False if none."""
        for connections in self._idle.values():
            if connections:
                self._drop(connections.pop(0))  # the least recently used
                return True
        return False

    async def _connect(self, origin: Origin, timeout: float) -> Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        closes = self._closes
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                _, connection = await loop.create_connection(
                    lambda: Connection(origin),
                    host,
                    port,
                    ssl=self.tls if scheme == "https" else None,
                    server_hostname=host if scheme == "https" else None,
                )
        except TimeoutError:
            raise HttpFailure("timeout", f"timed out connecting to {host}:{port}") from None
        except (OSError, ssl.SSLError) as exc:
            raise HttpFailure("connect", str(exc)) from None
        if closes != self._closes:  # the pool closed meanwhile (the server stopping): nothing may keep this one open
            connection.close()
            raise HttpFailure("connect", f"the connection to {host}:{port} was made after its pool closed")
        self._all.add(connection)
        return connection

    def _release(self, connection: Connection) -> None:
        if connection.closed:
            self._drop(connection)
        else:
            connection.idle_since = asyncio.get_running_loop().time()
            self._idle.setdefault(connection.origin, []).append(connection)
        self._wake()

    def _drop(self, connection: Connection) -> None:
        connection.close()
        if connection in self._all:
            self._all.discard(connection)
            self.opened -= 1

    def _wake(self) -> None:
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def close(self) -> None:
        """Close every connection, and any being made now once it is (a pool closed may be used again)."""
        self._closes += 1
        for connection in list(self._all):
            self._drop(connection)
        self._idle.clear()


def _socket_readable(sock: Any) -> bool:
    """Would a read of ``sock`` return at once (data, or the end)? A socket that is gone counts as ended.

    An idle connection with something to read has been closed (or spoken to out
    of turn) by the server, perhaps just now: as httpcore asked before reusing one.
    """
    fd = -1 if sock is None else sock.fileno()
    if fd < 0:
        return True
    poll = select.poll()
    poll.register(fd, select.POLLIN)
    return bool(poll.poll(0))


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(HttpFailure("timeout", "timed out waiting for a free connection"))
