"""Served connections leave no reference cycles behind: their objects go with their reference counts.

Why: objects freed only by the garbage collector set off its collections, and
under a burst of connections that meant one or two full collections per 1,000
(bench/live.py), each stopping the event loop for up to 120 ms of CPU. Each
request's ``RequestResponseCycle`` and ``serving.HeadWithBody`` (its transport)
referred to each other, and with them went the scope, the request's events,
the connection's transport and flow control: nearly all of a worker's cyclic
garbage.

The server here is the real one (``serving.config``, ``serving.DrainingServer``,
uvloop, the app's lifespan and the fused sync route) in a thread of the test's
process, over real sockets, so that the collector's ``DEBUG_SAVEALL`` can show
what it would have had to free: keep-alive and closed connections, a lookup, a
refusal of bad credentials, an unknown path and ``GET /healthz``. The lookups
and refusals take the server's plain path (``serving.PlainCycle``, whose
``on_response`` holds the protocol that holds it), the others uvicorn's ASGI
cycle; the last test holds that the plain path is the one taken.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import uvloop
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle
from uvloop.loop import TCPTransport  # type: ignore[attr-defined]  # uvloop's stubs name only the loop

from numlookup.accounts import create_account
from numlookup.api.app import create_app
from numlookup.billing import parse_amount
from numlookup.serving import DrainingServer, HeadWithBody, PlainCycle, config
from numlookup.settings import Settings
from numlookup.store import make_engine, upgrade
from tests.support import database_url, free_port, read_response

BODY = b'{"numbers":["+37251000001"]}'
SOCKET_TIMEOUT_S = 30  # a hang guard, not a measure
# The kinds that formed each request's reference cycle, and what hung from it.
CYCLIC_KINDS = (RequestResponseCycle, HeadWithBody, FlowControl, asyncio.Event, TCPTransport)


class _Served:
    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Served]:
    data = tmp_path_factory.mktemp("garbage")
    url = database_url(data)
    engine = make_engine(url)
    upgrade(engine)
    creds = create_account(engine, "garbage", credits=parse_amount("1000"))
    engine.dispose()
    settings = Settings(data_dir=str(data), database_url=url, rate_limit_per_ip=0, access_log=False)
    port = free_port()
    cfg = config(settings, host="127.0.0.1", port=port, workers=1)
    cfg.log_config = None  # the test's logging stays pytest's
    cfg.factory = False
    cfg.app = create_app(settings)
    server = DrainingServer(cfg)
    thread = threading.Thread(target=lambda: uvloop.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    token = base64.b64encode(f"{creds.api_username}:{creds.api_password}".encode()).decode()
    try:
        yield _Served(port, token)
    finally:
        server.should_exit = True
        thread.join(60)
        gc.unfreeze()  # the lifespan froze the test process's heap


def _lookup(token: str | None, *, close: bool) -> bytes:
    auth = f"Authorization: Basic {token}\r\n" if token else ""
    return (
        "POST /v1/hlr/sync HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        f"{auth}Content-Length: {len(BODY)}\r\n" + ("Connection: close\r\n" if close else "") + "\r\n"
    ).encode() + BODY


def _get(path: str, *, close: bool) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: test\r\n" + ("Connection: close\r\n" if close else "") + "\r\n").encode()


def _exchange(sock: socket.socket, request: bytes) -> tuple[int, bool]:
    """Sends one request and reads its whole response; returns its status and whether the server closes after it."""
    sock.sendall(request)
    response = read_response(sock)
    return response.status_code, response.headers.get("connection", "").lower() == "close"


def _serve_a_mix(served: _Served) -> Counter[int]:
    statuses: Counter[int] = Counter()
    address = ("127.0.0.1", served.port)
    requests = [
        (_lookup(served.token, close=False), _lookup(served.token, close=True)),
        (_lookup("bm86bm8=", close=False), _lookup(None, close=True)),  # refused: bad credentials, none
        (_get("/healthz", close=False), _get("/healthz", close=True)),
        (_get("/no/such/path", close=False), _get("/no/such/path", close=True)),
    ]
    for _ in range(5):
        for keep_alive, closing in requests:
            sock = socket.create_connection(address, SOCKET_TIMEOUT_S)
            for _ in range(2):  # on one connection, closed by the client, unless the server closes it
                status, closes = _exchange(sock, keep_alive)
                statuses[status] += 1
                if closes:
                    sock.close()
                    sock = socket.create_connection(address, SOCKET_TIMEOUT_S)
            sock.close()
            with socket.create_connection(address, SOCKET_TIMEOUT_S) as sock:  # closed by the server
                status, closes = _exchange(sock, closing)
                statuses[status] += 1
                assert closes and sock.recv(1) == b""
    return statuses


def _cyclic_garbage(served: _Served) -> tuple[Counter[str], Counter[int]]:
    """What the collector finds unreachable after a mix of connections, by kind."""
    _serve_a_mix(served)  # warm: first requests build what lives as long as the worker
    gc.collect()
    flags = gc.get_debug()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        statuses = _serve_a_mix(served)
        time.sleep(0.5)  # the server's side of the last connection is let go
        gc.collect()
        found = Counter(type(o).__qualname__ for o in gc.garbage if isinstance(o, CYCLIC_KINDS))
    finally:
        gc.set_debug(flags)
        gc.garbage.clear()
    return found, statuses


def test_connections_served_leave_no_cycles_of_requests_or_their_transports(served: _Served) -> None:
    found, statuses = _cyclic_garbage(served)
    assert statuses == {200: 5 * 3 * 2, 401: 5 * 3, 404: 5 * 3}
    assert found == Counter()


def test_lookups_take_the_plain_path_and_odd_requests_the_asgi_one(
    served: _Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the test above frees is the plain path's: a plain lookup is answered by it, a chunked one is not."""
    answered: list[PlainCycle] = []
    run = PlainCycle.run_asgi

    async def counted(cycle: PlainCycle, app: object) -> None:
        answered.append(cycle)
        await run(cycle, app)

    monkeypatch.setattr(PlainCycle, "run_asgi", counted)
    chunked = (
        _lookup(served.token, close=True)
        .replace(f"Content-Length: {len(BODY)}".encode(), b"Transfer-Encoding: chunked")
        .replace(b"\r\n\r\n" + BODY, b"\r\n\r\n" + f"{len(BODY):x}\r\n".encode() + BODY + b"\r\n0\r\n\r\n")
    )
    with socket.create_connection(("127.0.0.1", served.port), SOCKET_TIMEOUT_S) as sock:
        status, _ = _exchange(sock, _lookup(served.token, close=True))
    assert len(answered) == 1
    with socket.create_connection(("127.0.0.1", served.port), SOCKET_TIMEOUT_S) as sock:
        # Answered alike (the test above may have left this address refused for its bad credentials: 429).
        assert _exchange(sock, chunked) == (status, True)
    assert len(answered) == 1
    answered.clear()  # the cycles go with the test
