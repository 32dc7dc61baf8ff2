"""Runs the app under uvicorn: logging, worker processes and a graceful shutdown.

On SIGTERM (or Ctrl+C) uvicorn stops listening, lets the requests in flight
finish, for at most ``timeout_graceful_shutdown_seconds``, and then runs the
app's lifespan shutdown, which waits for the last charge commit. Gaps in
uvicorn's own handling are closed here:

- a keep-alive client whose next request was already on its way when the
  shutdown began lost it to a reset or an empty reply (see
  :class:`DrainingHttpToolsProtocol`);
- closing the listening socket reset the connections the kernel had queued on
  it, requests sent and never read (see :class:`DrainingServer`);
- with several workers, each worker stopped on its own tick while the others
  still accepted: clients reconnecting from a draining worker were taken into
  the queue just before the last worker left it (see :class:`Supervisor`).

And three in its protocol: a header block sent slowly, or never finished, held a
connection open for as long as the client liked (see :class:`DrainingHttpToolsProtocol`);
a response's head and body went out in two socket writes (see :class:`HeadWithBody`);
and the one request nearly all of a node's traffic is, a plain ``POST /v1/hlr/sync``,
paid for ASGI's scope, messages and dispatch about as much as a raw app's whole
request (see :class:`PlainCycle`).

A graceful stop exits 0, with one worker or many.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
import weakref
from asyncio import TimerHandle, Transport
from collections.abc import Awaitable, Callable, Generator, Sequence
from types import FrameType
from typing import Any, Protocol

import uvicorn
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.supervisors import Multiprocess, multiprocess

from numlookup.listen_queue import Listener, new_connections_stopped, settled, stop_new_connections
from numlookup.logs import flush_kept_lines, logging_config, resolve_format
from numlookup.settings import Settings

# How long a connection idle when the shutdown begins may still bring one request.
# Long enough for a busy client's next request, which is typically already in
# flight; an idle pool's connections are let go after it.
DRAIN_IDLE_SECONDS = 1.0
# The header deadline of a protocol built without a ServerConfig: the setting's default.
DEFAULT_HEADER_TIMEOUT = Settings().header_timeout_seconds
# The longest a stopping worker goes on accepting: for the supervisor, signalled at the
# same moment, to stop new connections, and for handshakes in progress to complete (a
# round trip each; one whose client never answers holds the shutdown no longer).
LISTEN_DRAIN_SECONDS = 1.0
# How long a worker may take to answer the supervisor's health ping (see ``config``).
WORKER_HEALTHCHECK_SECONDS = 30.0
LISTEN_POLL_SECONDS = 0.02
# prometheus-client's multiprocess folder (see numlookup.metrics). Named here rather
# than imported: prometheus-client reads it once, at import, which must come after.
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# uvicorn's exit status when the app cannot start.
STARTUP_FAILURE = 3
# Where the app's lifespan state holds its ProtocolRefusals (numlookup.api.refusals.LIFESPAN_KEY).
REFUSALS_STATE_KEY = "numlookup.protocol_refusals"
# Where it holds the sync route's edge, which answers plain requests to it (numlookup.api.sync_edge.LIFESPAN_KEY).
SYNC_EDGE_STATE_KEY = "numlookup.sync_edge"
PLAIN_METHOD = b"POST"
PLAIN_VERSIONS = ("1.1", "1.0")
# What uvicorn's RequestResponseCycle answers when the app fails before it responds.
APP_FAILED = (
    500,
    [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"21"), (b"connection", b"close")],
    b"Internal Server Error",
)


class ServerConfig(uvicorn.Config):
    """uvicorn's configuration and ours: ``header_timeout`` (seconds) for :class:`DrainingHttpToolsProtocol`.

    A module-level class, so the supervisor can hand it to worker processes (pickled) as it does uvicorn's.
    """

    def __init__(self, app: str, *, header_timeout: float, **options: Any) -> None:
        super().__init__(app, **options)
        self.header_timeout = header_timeout


class _Refusals(Protocol):
    """The app's answers to refusals the server makes (``numlookup.api.refusals.ProtocolRefusals``)."""

    def header_timeout(
        self, seconds: float, client: str | None, waited: float, default_headers: list[tuple[bytes, bytes]]
    ) -> bytes: ...


Respond = Callable[[int, list[tuple[bytes, bytes]], bytes], Awaitable[None]]
Receive = Callable[[], Awaitable[Any]]


class _PlainEdge(Protocol):
    """The app's edge for one route, called without ASGI (``numlookup.api.sync_edge.SyncEdge``)."""

    raw_path: bytes  # the request target it answers, exactly

    async def serve(
        self,
        raw_headers: list[tuple[bytes, bytes]],
        peer: str | None,
        receive: Receive,
        respond: Respond,
        ready: Callable[[], bytes | None] | None = None,
    ) -> None: ...


class HeadWithBody:
    """A request's view of the connection's transport: the response's head goes out with its first body bytes.

    Why: uvicorn writes the status line and headers when the app sends
    ``http.response.start`` and the body when it sends ``http.response.body``, and
    uvloop's transport makes a system call for each write at once. On loopback
    (a proxy in front, or the benchmark) that send runs the receiver's side of TCP
    too, and a client reading the head alone wakes up twice. Here the head is held
    until the next write, and both go out in one; if nothing follows in the same
    turn of the event loop (a streamed body still on its way), the head goes out
    on its own at the next turn, as it would have. ``close`` writes a held head
    first. Only the head is held: a ``100 Continue`` (written before the response
    starts) and every body chunk go out when written.

    The request's cycle is held by a weak reference: the cycle holds this view as
    its transport, and a strong reference back made every request's cycle, and
    with it the scope, the request's events, the connection's transport and its
    flow control, a reference cycle that only the garbage collector could free.
    That was nearly all of a worker's cyclic garbage under bench/live.py
    (``gc.DEBUG_SAVEALL``: one cycle and view per request, ~27 objects each), and
    the collector's work: its middle-generation collections took about 100 ms
    less CPU per run once it was gone.
    """

    __slots__ = ("_transport", "_cycle", "_loop", "_held", "_head_seen")

    def __init__(self, transport: Transport, cycle: RequestResponseCycle, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._cycle = weakref.ref(cycle)
        self._loop = loop
        self._held: bytes | None = None
        self._head_seen = False

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
        elif not self._head_seen and self._response_started():
            # uvicorn marks the response started just before it writes the head: this is the head.
            self._head_seen = True
            self._held = data
            self._loop.call_soon(self._release)
        else:
            self._transport.write(data)

    def _response_started(self) -> bool:
        cycle = self._cycle()
        return cycle is not None and cycle.response_started

    def _release(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self._release()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()


class PlainCycle(RequestResponseCycle):
    """A plain ``POST`` to the sync route, answered by the app's edge without ASGI's scope and messages.

    Why: nearly every request a node serves is this one, and uvicorn's work per
    request around the app (the scope, the request's task entering Starlette and
    the edge's dispatch, two ``send`` messages checked and serialised one by one,
    the head held for the body: see :class:`HeadWithBody`) cost about as much CPU
    as a whole request of a raw app. Here the edge gets the header list, the peer
    and the body's ``receive``, and gives the whole response back at once: status
    line, uvicorn's default headers (``date``, ``server``), the edge's headers and
    the body, serialised as uvicorn's ``send`` would and written in one call.

    Everything else is uvicorn's cycle, unchanged: the body as the protocol
    collects it (flow control, the high-water mark), ``receive``'s disconnect,
    keep-alive, pipelining (the protocol queues and starts this cycle as its own),
    and the protocol's shutdown and header deadline, which read the same fields.
    Only a request the protocol finds plain comes here (see
    :meth:`DrainingHttpToolsProtocol.on_headers_complete`).
    """

    def __init__(
        self,
        edge: _PlainEdge,
        headers: list[tuple[bytes, bytes]],
        peer: str | None,
        protocol: DrainingHttpToolsProtocol,
        version: str,
        keep_alive: bool,
    ) -> None:
        super().__init__(
            scope=None,  # type: ignore[arg-type]  # read only by uvicorn's send, which this cycle does not use
            transport=protocol.transport,
            flow=protocol.flow,
            logger=protocol.logger,
            access_logger=protocol.access_logger,
            access_log=protocol.access_log,
            default_headers=protocol.server_state.default_headers,
            message_event=asyncio.Event(),
            expect_100_continue=False,
            keep_alive=keep_alive,
            on_response=protocol.on_response_complete,
        )
        self.edge = edge
        self.headers = headers
        self.peer = peer
        self.client = protocol.client
        self.http_version = version

    async def run_asgi(self, app: Any) -> None:
        """The edge's work (``app``, the ASGI app, is not called); a failure answered as uvicorn's ``run_asgi`` does."""
        try:
            await self.edge.serve(self.headers, self.peer, self.receive, self.respond, self.ready_body)
        except BaseException as exc:
            self.logger.error("Exception in ASGI application\n", exc_info=exc)
            if not self.response_started:
                await self.respond(*APP_FAILED)
            else:
                self.transport.close()
        else:
            if not self.response_started and not self.disconnected:
                self.logger.error("ASGI callable returned without starting response.")
                await self.respond(*APP_FAILED)
        finally:
            self.on_response = _nothing  # the protocol's method held the protocol, which holds this cycle

    def ready_body(self) -> bytes | None:
        """What ``receive`` would give now without waiting, if that is the whole body: its bytes; else None.

        Step for step uvicorn's ``receive`` when its event is set (the body, or the
        end of it, has come) and nothing else is due: a ``100 Continue`` to send (a
        plain request has none), a disconnect, a response sent already, more body to come.
        """
        if (
            self.waiting_for_100_continue
            or self.disconnected
            or self.response_complete
            or self.more_body
            or not self.message_event.is_set()
        ):
            return None
        self.flow.resume_reading()
        self.message_event.clear()
        body = bytes(self.body)
        self.body = bytearray()
        return body

    async def respond(self, status: int, headers: list[tuple[bytes, bytes]], content: bytes) -> None:
        """The whole response in one write, byte for byte what uvicorn's ``send`` writes for the two messages."""
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        if self.response_started:
            raise RuntimeError("Unexpected response after the response was started.")
        self.response_started = True
        if self.access_log:  # as uvicorn's send logs it (its logger has handlers only if the operator gave it some)
            client = "%s:%d" % self.client if self.client else ""  # noqa: UP031  # uvicorn's own format
            path = self.edge.raw_path.decode("ascii")
            self.access_logger.info('%s - "%s %s HTTP/%s" %d', client, "POST", path, self.http_version, status)
        head = [STATUS_LINE[status], _default_head(self.default_headers)]
        length: int | None = None
        chunked = False
        closes = False
        for name, value in headers:
            if name not in _EDGE_NAMES:  # the edge's own names pass the check and are lower case already
                if HEADER_RE.search(name):
                    raise RuntimeError("Invalid HTTP header name.")
                name = name.lower()
            if HEADER_VALUE_RE.search(value):
                raise RuntimeError("Invalid HTTP header value.")
            if name == b"content-length" and length is None and not chunked:
                length = int(value.decode())
            elif name == b"transfer-encoding" and value.lower() == b"chunked":
                length, chunked = 0, True
            elif name == b"connection" and b"close" in [token.lower().strip() for token in value.split(b",")]:
                self.keep_alive = False
                closes = True
            head += (name, b": ", value, b"\r\n")
        if not self.keep_alive and not closes:
            head.append(b"connection: close\r\n")
        if length is None and status not in (204, 304):
            chunked = True
            head.append(b"transfer-encoding: chunked\r\n")
        head.append(b"\r\n")
        if chunked:
            head += (b"%x\r\n" % len(content), content, b"\r\n", b"0\r\n\r\n") if content else (b"0\r\n\r\n",)
        elif len(content) != (length or 0):
            self.transport.write(b"".join(head))  # as uvicorn: the head went out before the body was refused
            raise RuntimeError(
                f"Response content {'longer' if len(content) > (length or 0) else 'shorter'} than Content-Length"
            )
        else:
            head.append(content)
        self.transport.write(b"".join(head))
        self.response_complete = True
        self.message_event.set()
        if not self.keep_alive:
            self.transport.close()
        self.on_response()


def _nothing() -> None:
    pass


# The names the edge answers with (``api.sync_edge``): valid tokens in lower case, so uvicorn's check
# of a name and its ``lower()`` change nothing for them (tests/e2e/test_sync_edge.py's wire bytes).
_EDGE_NAMES = frozenset((b"content-length", b"content-type", b"x-request-id", b"connection"))
_default_heads: list[tuple[list[tuple[bytes, bytes]], bytes]] = [([], b"")]  # uvicorn's list, its head lines


def _default_head(headers: list[tuple[bytes, bytes]]) -> bytes:
    """uvicorn's default headers (``date``, ``server``) as head lines, made once per list.

    uvicorn puts a new list in its server state once a second (the date changes);
    every response of that second writes the same lines.
    """
    last = _default_heads[0]  # one read of the pair
    if last[0] is not headers:
        last = _default_heads[0] = (headers, b"".join(name + b": " + value + b"\r\n" for name, value in headers))
    return last[1]


class DrainingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a deadline for headers and a shutdown that cuts no request off.

    **Headers.** uvicorn waits for a header block for as long as it takes: a client
    sending a byte now and then (or blank lines, which begin no request) held a
    connection, and a worker's file descriptor, for ever. Here a request's header
    block must be complete ``header_timeout`` seconds after its first byte (or the
    first blank line before it) arrived; else the client gets a 408 and the
    connection closes. The 408 comes from the app (the lifespan state's
    :data:`REFUSALS_STATE_KEY`), so it is the wire's error body, carries an
    ``X-Request-Id`` and is logged and counted; an app without one gets the
    connection closed. Between requests ``timeout_keep_alive`` applies, and from
    the moment a connection opens too: a connection that never sends a byte is
    idle, not slow. While the server itself has stopped reading (pipelined requests
    waiting their turn) the deadline starts again, and if an earlier request's
    response is still going out, the connection closes after it instead.

    uvicorn closes every connection without a response in progress at once. Under
    load a keep-alive client has often just sent its next request on such a
    connection, or the server has read part of it: closing then resets the
    connection or ends it without a reply, and the client cannot know whether it
    was charged.

    Here, once the shutdown begins, a connection closes only at a request boundary:
    after the response to a request that was read completely (that response says
    ``Connection: close``). A connection that is idle, or whose response went out
    before its body came in (closing then, with body bytes still arriving, would
    make the kernel reset it), gets ``DRAIN_IDLE_SECONDS`` to bring its next request.
    """

    # The app's edge for plain requests to its route (see PlainCycle); None: every request goes through ASGI.
    plain_requests = True  # a test's server turns it off, to hold the two paths' bytes equal
    _plain_edge: _PlainEdge | None = None
    _draining = False
    _header_timer: TimerHandle | None = None
    _header_started = 0.0
    _awaiting_headers = False  # a header block has begun and not finished
    _idle_deadline: float | None = None  # when an idle connection closes; None while busy
    _idle_timer_at = 0.0  # when the armed idle timer (``timeout_keep_alive_task``) fires

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]  # uvicorn narrows it too
        super().connection_made(transport)
        if self.plain_requests and self.limit_concurrency is None and not self.root_path:
            self._plain_edge = self.app_state.get(SYNC_EDGE_STATE_KEY)
        self._idle(self.timeout_keep_alive)

    def data_received(self, data: bytes) -> None:
        if (
            not self._awaiting_headers
            and self._header_timer is None
            and (self.cycle is None or self.cycle.response_complete)
        ):
            self._headers_begin()  # between requests: this is the next one's first byte
        super().data_received(data)
        # The timer only for a header block these bytes left unfinished: nearly every one
        # arrives whole, and a timer armed and cancelled per request was a cost of its own.
        if self._awaiting_headers and self._header_timer is None and not self.transport.is_closing():
            self._arm_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._awaiting_headers and self._header_timer is None:
            self._headers_begin()  # a pipelined request, begun within an earlier one's bytes

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._cancel_header_timer()
        edge = self._plain_edge
        if edge is not None and self.url == edge.raw_path and self._plain():
            self._start_plain(edge)
            return
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is not None and cycle is not before:  # a request to answer (not an upgrade): see HeadWithBody
            cycle.transport = HeadWithBody(self.transport, cycle, self.loop)  # type: ignore[assignment]

    def _plain(self) -> bool:
        """Whether the request (its target already matched) is one :class:`PlainCycle` answers as uvicorn would.

        A ``POST`` over HTTP/1.1 or 1.0 with its body framed by ``Content-Length`` (or
        none), no ``Expect: 100-continue``, no upgrade. Anything else (chunked bodies,
        ``100 Continue``, another method's 405) keeps uvicorn's and Starlette's path.
        """
        parser = self.parser
        if self.expect_100_continue or parser.get_method() != PLAIN_METHOD or parser.should_upgrade():
            return False
        if parser.get_http_version() not in PLAIN_VERSIONS:
            return False
        return all(name != b"transfer-encoding" for name, _ in self.headers)

    def _start_plain(self, edge: _PlainEdge) -> None:
        """What uvicorn's ``on_headers_complete`` does with a request, with a :class:`PlainCycle` for it."""
        parser = self.parser
        version = parser.get_http_version()
        keep_alive = version != "1.0" and parser.should_keep_alive()
        client = self.client
        existing = self.cycle
        self.cycle = cycle = PlainCycle(edge, self.headers, client[0] if client else None, self, version, keep_alive)
        if existing is None or existing.response_complete:
            self._start_asgi_task(cycle, self.app)
        else:  # pipelined: its turn comes after the response in progress, as uvicorn's
            self.flow.pause_reading()
            self.pipeline.appendleft((cycle, self.app))

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        if self.timeout_keep_alive_task is not None:  # cancelled for good: a closed connection is never idle
            self.timeout_keep_alive_task.cancel()
            self.timeout_keep_alive_task = None
        super().connection_lost(exc)

    def _unset_keepalive_if_required(self) -> None:
        """Busy (bytes came, or a response is under way): the idle deadline is gone, its timer left armed.

        Why not cancelled, as uvicorn does: uvicorn cancels a timer as each request
        arrives and arms another as its response completes, 2.5 µs of the event loop
        per request on uvloop. Here a connection has one timer at a time; firing,
        it closes the connection only if it is idle past its deadline
        (:meth:`_idle_timer_fired`), and otherwise is armed again at most once per
        timeout, not once per request.
        """
        self._idle_deadline = None

    def _idle(self, seconds: float) -> None:
        """Idle from now: the connection closes ``seconds`` from now unless bytes come first."""
        self._idle_deadline = deadline = self.loop.time() + seconds
        if self.timeout_keep_alive_task is None or self._idle_timer_at > deadline:
            if self.timeout_keep_alive_task is not None:  # armed for later than the new deadline (a drain's is shorter)
                self.timeout_keep_alive_task.cancel()
            self._idle_timer_at = deadline
            self.timeout_keep_alive_task = self.loop.call_at(deadline, self._idle_timer_fired)

    def _idle_timer_fired(self) -> None:
        self.timeout_keep_alive_task = None
        deadline = self._idle_deadline
        if deadline is None:
            return  # busy: the response's completion sets the next deadline, and a timer for it
        if deadline > self.loop.time():  # busy and idle again since it was armed: wait on to the later deadline
            self._idle_timer_at = deadline
            self.timeout_keep_alive_task = self.loop.call_at(deadline, self._idle_timer_fired)
            return
        self.timeout_keep_alive_handler()

    def _headers_begin(self) -> None:
        """A header block's first byte is here: its deadline runs from now (the timer once it is needed)."""
        self._header_started = self.loop.time()
        self._awaiting_headers = True

    def _arm_header_timer(self, *, restart: bool = False) -> None:
        """The timer for the header block under way; ``restart``: its deadline runs from now again."""
        if restart or not self._awaiting_headers:
            self._headers_begin()
        deadline = self._header_started + self._header_timeout()
        self._header_timer = self.loop.call_at(deadline, self._headers_timed_out)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> float:
        return self.config.header_timeout if isinstance(self.config, ServerConfig) else DEFAULT_HEADER_TIMEOUT

    def _headers_timed_out(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self.flow.read_paused:  # the server is not reading: no fault of the client's
            self._arm_header_timer(restart=True)
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # an earlier request's response is under way: end after it
            self._awaiting_headers = False
            return
        refusals: _Refusals | None = self.app_state.get(REFUSALS_STATE_KEY)
        if refusals is not None:
            client = self.client[0] if self.client else None
            waited = self.loop.time() - self._header_started
            self.transport.write(
                refusals.header_timeout(self._header_timeout(), client, waited, self.server_state.default_headers)
            )
        self.transport.close()

    def shutdown(self) -> None:
        self._draining = True
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            self._arm_drain_timer()
        elif not cycle.more_body:
            cycle.keep_alive = False
        # else: on_message_complete or on_response_complete decides.

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self._draining and self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False

    def on_response_complete(self) -> None:
        """uvicorn's, with the idle deadline set (:meth:`_idle`), not a timer armed; while draining, the drain's."""
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        if self.pipeline:  # the next pipelined request's turn
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        elif not self._draining:
            self._idle(self.timeout_keep_alive)
        if self._draining:
            self._arm_drain_timer()

    def _arm_drain_timer(self) -> None:
        self._idle(DRAIN_IDLE_SECONDS)


class DrainingServer(uvicorn.Server):
    """uvicorn's server, which serves the connections queued on its listening socket before closing it.

    The kernel completes handshakes and queues connections on the listening socket
    by itself, and their clients send their requests at once. uvicorn closes the
    socket first thing in its shutdown, and the kernel resets every connection
    still queued: requests sent, never read, and the client cannot tell why.

    Here the shutdown first stops new connections (see :mod:`numlookup.listen_queue`;
    with several workers the supervisor does that, for all of them), then goes on
    accepting until nothing is queued and no handshake is in progress, and only then
    lets uvicorn close the socket and drain the connections, those just accepted
    among them. A worker signalled at the same moment as the supervisor (systemd,
    Ctrl+C) waits for it to stop new connections; one that finds them not stopped
    within ``LISTEN_DRAIN_SECONDS`` is being retired alone (SIGHUP, SIGTTOU) and
    closes its copy of the socket, which the other workers go on serving.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        with super().capture_signals():
            try:
                yield
            finally:
                # uvicorn raises the signal that stopped it again once it has left the block, inside
                # the loop's last turn: a worker dies of it there, with the lines that turn kept for
                # its write (logs.TurnStreamHandler) unwritten. They go out first.
                flush_kept_lines()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        listeners = [sock for server in self.servers for sock in server.sockets]
        if self.config.workers == 1:  # no supervisor: this process is the only one holding the socket
            for sock in listeners:
                stop_new_connections(sock)
        await _accept_what_is_queued(listeners)
        await super().shutdown(sockets)


async def _accept_what_is_queued(listeners: Sequence[Listener]) -> None:
    """Returns once nothing more can come from the listeners, or after ``LISTEN_DRAIN_SECONDS``.

    The event loop goes on accepting meanwhile, as before the shutdown.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + LISTEN_DRAIN_SECONDS
    # In a thread: a look at the handshakes in progress takes tens of milliseconds,
    # during which the requests in flight go on.
    while not await asyncio.to_thread(_done_with, listeners) and loop.time() < deadline:
        await asyncio.sleep(LISTEN_POLL_SECONDS)
    # uvloop makes a connection's protocol one loop iteration after accepting it: let
    # the last ones be made, so that uvicorn's shutdown finds and drains them.
    await asyncio.sleep(0)


def _done_with(listeners: Sequence[Listener]) -> bool:
    return all(new_connections_stopped(sock) and settled(sock) for sock in listeners)


class _Worker(multiprocess.Process):
    """uvicorn's worker process, running a :class:`DrainingServer` (uvicorn's runs a plain ``Server``)."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = DrainingServer(config=self.config)
        return self._server


class Supervisor(Multiprocess):
    """uvicorn's worker supervisor, which stops new connections for every worker at once, resetting none.

    The workers share one listening socket; uvicorn lets each close its own copy
    when it notices the signal, on its own 0.1 s tick, while the others still accept
    clients, those reconnecting from a draining worker among them. And the last
    copy to close resets what is queued on it.

    Here the supervisor's signal handler stops new connections on the shared socket,
    for every process holding it (see :mod:`numlookup.listen_queue`), the moment
    SIGTERM or SIGINT arrives (whether it came to the supervisor alone, as from
    ``docker stop``, or to every process, as from systemd), and passes SIGTERM on to
    the workers at once. Each worker then serves what is still queued before closing
    its copy (:class:`DrainingServer`). The supervisor closes its own copy when it
    stops supervising, so the port refuses connections as soon as the last worker is
    done with the queue, not only when the last one exits. The handler only makes
    system calls; uvicorn's loop then logs the signal, stops supervising and waits
    for the workers, as before.

    The handler signals the workers itself, not with uvicorn's ``terminate()``: that
    also closes the pipe the supervisor pings each worker on, and a signal that came
    during uvicorn's health check (``keep_subprocess_alive``) made it take a healthy
    worker for hung: SIGKILL, requests lost in flight, and a new worker started.

    uvicorn makes every worker (at the start, after a crash, on SIGHUP or SIGTTIN)
    from the ``Process`` of its module, with no way to choose another: the
    supervisor replaces that name, in its own process, with :class:`_Worker`.
    """

    def __init__(self, config: uvicorn.Config, sockets: list[socket.socket]) -> None:
        super().__init__(config, sockets)
        multiprocess.Process = _Worker  # type: ignore[misc]
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)

    def _stop(self, signum: int, _frame: FrameType | None) -> None:
        for sock in self.sockets:
            try:
                stop_new_connections(sock)
            except OSError:
                pass  # closed: a second signal, while waiting for the workers
        for process in self.processes:
            if process.exitcode is None and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        self.signal_queue.append(signum)

    def terminate_all(self) -> None:
        for sock in self.sockets:
            sock.close()
        super().terminate_all()


def _exit_cleanly(_signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(0)


def config(settings: Settings, *, host: str, port: int, workers: int) -> uvicorn.Config:
    """uvicorn's configuration for ``numlookup serve``."""
    return ServerConfig(
        "numlookup.api.app:create_app",
        header_timeout=settings.header_timeout_seconds,
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http=f"{__name__}:{DrainingHttpToolsProtocol.__name__}",
        # No route speaks WebSocket; uvicorn's default ("auto") imported the websockets
        # library at every start for none. An upgrade request is answered as plain HTTP.
        ws="none",
        log_config=logging_config(resolve_format(settings.log_format), settings.log_level),
        log_level=settings.log_level,
        # The request log is the request-id middleware's (settings.access_log).
        access_log=False,
        timeout_graceful_shutdown=settings.timeout_graceful_shutdown_seconds,
        timeout_keep_alive=settings.timeout_keep_alive_seconds,
        # uvicorn's supervisor kills a worker that does not answer its health ping in time,
        # and a worker answers only once it has imported the app: on a busy machine that
        # took longer than uvicorn's 5 s, and workers were killed and restarted in a loop.
        timeout_worker_healthcheck=WORKER_HEALTHCHECK_SECONDS,
        # The app decides who the client is (trusted_proxies); uvicorn must not
        # rewrite the peer from X-Forwarded-For before the app sees it.
        proxy_headers=False,
    )


def serve(settings: Settings, *, host: str, port: int, workers: int) -> None:
    """Serve until SIGTERM or Ctrl+C, then shut down gracefully and return (exit status 0)."""
    if os.environ.get(METRICS_DIR_VARIABLE):  # the operator chose the folder: theirs to manage
        _serve(settings, host=host, port=port, workers=workers)
        return
    # One folder per serve, so nodes sharing a data directory keep apart; set before
    # any worker imports prometheus-client, which reads it at import.
    folder = tempfile.mkdtemp(prefix="numlookup-metrics-")
    os.environ[METRICS_DIR_VARIABLE] = folder
    try:
        _serve(settings, host=host, port=port, workers=workers)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _serve(settings: Settings, *, host: str, port: int, workers: int) -> None:
    cfg = config(settings, host=host, port=port, workers=workers)
    if cfg.workers > 1:
        Supervisor(cfg, sockets=[cfg.bind_socket()]).run()
        return
    # uvicorn re-raises the signal that stopped it once it has shut down; with the
    # default disposition a SIGTERM would then kill the process (status -15) after
    # an orderly stop. A service manager should see 0.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    server = DrainingServer(cfg)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    if not server.started:
        sys.exit(STARTUP_FAILURE)
