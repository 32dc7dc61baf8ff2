"""How the provider kinds' HTTP pools use connections, against a real HTTP peer on 127.0.0.1.

``HttpClients`` keeps one connection per pool and hands a request the pool that
most recently finished one: sequential requests reuse one warm connection,
concurrent ones get a connection each, never more than ``max_connections``.
Its requests go straight to ``live.connections`` (asyncio's transports, httptools); the tests below
``Recorder`` prove they are the bytes httpx's client sent, and that answers read
the same, byte for byte.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvloop

from numlookup.live.http import HttpClients
from numlookup.live.source import SourceError
from tests.peers.messente import Peer

T = TypeVar("T")


def body(number: str) -> bytes:
    return json.dumps({"numbers": [number]}).encode()


async def ask(clients: HttpClients, peer: Peer, number: str) -> httpx.Response:
    return await clients.send("POST", peer.url + "/hlr/sync", content=body(number))


def test_sequential_requests_reuse_one_connection() -> None:
    with Peer() as peer:

        async def run() -> list[int]:
            clients = HttpClients("up", timeout=5, max_connections=16, auth=("u", "p"))
            try:
                return [(await ask(clients, peer, f"+3725100000{i}")).status_code for i in range(6)]
            finally:
                await clients.close()

        assert asyncio.run(run()) == [200] * 6
        assert peer.connections == 1
        assert [r["numbers"] for r in peer.requests] == [[f"+3725100000{i}"] for i in range(6)]


def test_concurrent_requests_get_a_connection_each_up_to_the_limit() -> None:
    gate = threading.Event()
    with Peer(gate=gate) as peer:

        async def run() -> tuple[int, int, list[httpx.Response]]:
            clients = HttpClients("up", timeout=30, max_connections=4, auth=("u", "p"))
            try:
                held = [asyncio.ensure_future(ask(clients, peer, f"+3725100000{i}")) for i in range(6)]
                for _ in range(1200):  # until the peer holds as many requests as there are connections
                    if peer.hits >= 4:
                        break
                    await asyncio.sleep(0.05)
                while_held = peer.connections, peer.hits
                gate.set()
                answered = await asyncio.gather(*held)
                return *while_held, answered
            finally:
                gate.set()
                await clients.close()

        connections, hits, answered = asyncio.run(run())
        assert (connections, hits) == (4, 4)  # four requests in flight at once, one connection each
        assert [r.status_code for r in answered] == [200] * 6  # the other two queued behind them
        assert peer.connections == 4
        assert sorted(n for r in peer.requests for n in r["numbers"]) == [f"+3725100000{i}" for i in range(6)]


def test_after_a_burst_a_lone_request_takes_the_connection_used_last() -> None:
    with Peer() as peer:

        async def run() -> None:
            clients = HttpClients("up", timeout=5, max_connections=8, auth=("u", "p"))
            try:
                await asyncio.gather(*(ask(clients, peer, f"+3725100000{i}") for i in range(3)))
                for i in range(5):
                    assert (await ask(clients, peer, f"+3725100001{i}")).status_code == 200
            finally:
                await clients.close()

        asyncio.run(run())
        assert peer.connections == 3  # the burst's three; the lone requests opened none


class Recorder:
    """A raw HTTP/1.1 server on 127.0.0.1: records each request's bytes, answers each with the next canned bytes.

    ``close``: end the connection after every answer (a server without keep-alive,
    or one that closed an idle connection).
    """

    def __init__(self, answers: list[bytes], *, close: bool = False, tls: ssl.SSLContext | None = None) -> None:
        self.answers = list(answers)
        self.close = close
        self.tls = tls
        self.requests: list[bytes] = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            self.connections += 1
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):
                conn.close()
                return  # the client did not trust us
        with conn:
            pending = b""
            while True:
                while b"\r\n\r\n" not in pending:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    pending += chunk
                head, _, rest = pending.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(rest) < length:
                    rest += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + rest[:length])
                pending = rest[length:]
                conn.sendall(self.answers.pop(0))
                if self.close:
                    return

    def stop(self) -> None:
        self._listener.close()


@contextmanager
def recorder(answers: list[bytes], *, close: bool = False, tls: ssl.SSLContext | None = None) -> Iterator[Recorder]:
    server = Recorder(answers, close=close, tls=tls)
    try:
        yield server
    finally:
        server.stop()


LOOPS = ["asyncio", "uvloop"]  # the server runs on uvloop, whose transports are not asyncio's classes


def run_on(loop: str, coroutine: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop if loop == "uvloop" else None) as runner:
        return runner.run(coroutine)


GZIPPED = gzip.compress(b'{"result": [{"number": "+37251000000", "status": "ONLINE"}]}')
ANSWERS = [
    # chunked, gzip-encoded, a header twice
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nX-Seen: a\r\n"
    b"X-Seen: b\r\nTransfer-Encoding: chunked\r\n\r\n"
    + f"{len(GZIPPED[:10]):x}\r\n".encode()
    + GZIPPED[:10]
    + b"\r\n"
    + f"{len(GZIPPED[10:]):x}\r\n".encode()
    + GZIPPED[10:]
    + b"\r\n0\r\n\r\n",
    # a per-number 404 some providers answer with
    b'HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n{"code": "nope"}\n',
    # a redirect is returned as it is, not followed
    b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n",
]


async def exchange(clients: HttpClients, url: str) -> list[tuple[int, list[tuple[bytes, bytes]], bytes, str]]:
    """The three requests the answers above are for: a POST with a body, a GET with parameters, a plain GET."""
    try:
        responses = [
            await clients.send("POST", url + "/v1/hlr/sync", content=b'{"numbers": ["+37251000000"]}'),
            await clients.send("GET", url + "/lookup/+37251000000", params={"Fields": "line_type", "x": "a b"}),
            await clients.send("GET", url + "/moved", headers={"X-Extra": "1"}),
        ]
    finally:
        await clients.close()
    return [(r.status_code, r.headers.raw, r.content, str(r.request.url)) for r in responses]


@pytest.mark.parametrize("loop", LOOPS)
@pytest.mark.parametrize("auth", [("user", "pässword"), None])
def test_requests_and_answers_are_httpxs_byte_for_byte(auth: tuple[str, str] | None, loop: str) -> None:
    """The same calls through httpx's clients and through the direct path: the same bytes each way."""
    seen = []
    with recorder(ANSWERS * 2) as server:  # one server: the Host header names its port
        for via_httpx in (True, False):
            clients = HttpClients(
                "up", timeout=5, max_connections=4, auth=auth, headers={"X-Api": "k"}, via_httpx=via_httpx
            )
            answers = run_on(loop, exchange(clients, server.url))
            seen.append((server.requests[-len(ANSWERS) :], answers))
    (httpx_requests, httpx_answers), (direct_requests, direct_answers) = seen
    assert direct_requests == httpx_requests
    assert direct_answers == httpx_answers
    assert direct_answers[0][2] == gzip.decompress(GZIPPED)  # decoded, as httpx decodes
    assert [a[0] for a in direct_answers] == [200, 404, 302]
    assert (b"Authorization: Basic " in direct_requests[0]) is (auth is not None)


async def repeated(clients: HttpClients, url: str) -> list[tuple[int, bytes, str, bytes]]:
    """Each kind of request again and again: bodies of other lengths, a caller's own Authorization, parameters."""
    calls: list[tuple[str, str, bytes | None, dict[str, str] | None, dict[str, str] | None]] = [
        ("POST", "/v1/hlr/sync", body("+37251000000"), None, {"Content-Type": "application/json"}),
        ("POST", "/v1/hlr/sync", json.dumps({"numbers": ["+37251000001"] * 7}).encode(), None, None),
        ("POST", "/v1/hlr/sync", b"", None, None),
        ("GET", "/lookup/+37251000000", None, {"Fields": "line_type"}, None),
        ("POST", "/v1/hlr/sync", body("+372510"), None, {"Content-Type": "application/json"}),
        ("GET", "/lookup/+37251000000", None, {"Fields": "line_type"}, None),
        ("POST", "/v1/hlr/sync", b"{}", None, {"Authorization": "Bearer t"}),
        ("POST", "/v1/hlr/sync", b"{}", None, None),
        ("POST", "/v1/hlr/sync", b'{"numbers": []}', None, {"Authorization": "Bearer t"}),
    ]
    try:
        responses = [
            await clients.send(method, url + path, content=content, params=params, headers=headers)
            for method, path, content, params, headers in calls
        ]
    finally:
        await clients.close()
    return [(r.status_code, r.content, str(r.request.url), r.request.content) for r in responses]


@pytest.mark.parametrize("auth", [("user", "pässword"), None])
def test_repeated_kinds_of_request_are_httpxs_byte_for_byte(auth: tuple[str, str] | None) -> None:
    """The head kept for a kind of request (``http._Template``) sends, for any later body, what httpx's client sends.

    The first test sends each kind once, that is each head as httpx built it
    for that very call; here the kept heads are used again, with bodies of
    other lengths, an empty one, a caller's own ``Authorization``.
    """
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    seen = []
    with recorder([answer] * 18) as server:
        for via_httpx in (True, False):
            clients = HttpClients("up", timeout=5, max_connections=2, auth=auth, via_httpx=via_httpx)
            answers = run_on("uvloop", repeated(clients, server.url))
            seen.append((server.requests[-9:], answers))
    (httpx_requests, httpx_answers), (direct_requests, direct_answers) = seen
    assert len(direct_requests) == 9
    assert direct_requests == httpx_requests
    assert direct_answers == httpx_answers
    assert len({r.split(b"Content-Length: ")[1].split(b"\r")[0] for r in direct_requests if b"POST" in r[:4]}) > 3


@pytest.mark.parametrize("loop", LOOPS)
def test_a_connection_the_server_closed_is_replaced(loop: str) -> None:
    """A server that closes after each answer: every request after the first finds its idle connection gone."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    with recorder([answer] * 4, close=True) as server:

        async def run() -> list[int]:
            clients = HttpClients("up", timeout=5, max_connections=2, via_httpx=False)
            statuses = []
            try:
                for _ in range(4):
                    statuses.append((await clients.send("GET", server.url + "/x")).status_code)
                    await asyncio.sleep(0.05)  # the server's close reaches us before the next request
            finally:
                await clients.close()
            return statuses

        assert run_on(loop, run()) == [200] * 4
        assert server.connections == 4


def failure(url: str, timeout: float, *, via_httpx: bool) -> str:
    """What one ``GET url/x`` raised, in the source's words (``"answered"`` if it did not)."""

    async def run() -> str:
        clients = HttpClients("up", timeout=timeout, max_connections=1, via_httpx=via_httpx)
        try:
            await clients.send("GET", url + "/x")
        except SourceError as exc:
            return str(exc)
        finally:
            await clients.close()
        return "answered"

    return asyncio.run(run())


@pytest.mark.parametrize("via_httpx", [True, False])
def test_a_server_that_stops_answering_mid_body_broke_the_connection(via_httpx: bool) -> None:
    cut = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"res'
    with recorder([cut], close=True) as server:
        assert failure(server.url, 5, via_httpx=via_httpx) == "up broke the connection"


def test_a_proxy_named_by_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """With HTTP_PROXY set, requests go through httpx's clients, which send them to that proxy."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    with recorder([answer]) as proxy, recorder([answer]) as origin:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)

        async def run() -> int:
            clients = HttpClients("up", timeout=5, max_connections=1)
            try:
                assert clients.via_httpx
                return (await clients.send("GET", origin.url + "/x")).status_code
            finally:
                await clients.close()

        assert asyncio.run(run()) == 200
        assert origin.requests == []
        assert proxy.requests[0].startswith(f"GET {origin.url}/x HTTP/1.1".encode())


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA, and a certificate it signs for 127.0.0.1 (the openssl command): (ca, certificate, key)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed (Debian: openssl)")
    folder.mkdir()
    key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")
    steps = [
        ["req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=test CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        ["req", "-new", *key, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"],
        ["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
         "-days", "2", "-out", "server.crt", "-extfile", "server.ext"],
    ]  # fmt: skip
    (folder / "server.ext").write_text("subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n")
    for step in steps:
        done = subprocess.run(["openssl", *step], cwd=folder, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    return folder / "ca.crt", folder / "server.crt", folder / "server.key"


@pytest.mark.parametrize(("via_httpx", "loop"), [(True, "asyncio"), (False, "asyncio"), (False, "uvloop")])
def test_tls_verifies_the_servers_certificate(
    via_httpx: bool, loop: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTPS to a server whose certificate a throwaway CA signed: refused until that CA is trusted, then answered."""
    ca, certificate, key = make_certificates(tmp_path / "certs")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(certificate, key)
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"

    async def ask_twice(url: str) -> list[int]:
        clients = HttpClients("up", timeout=5, max_connections=1, via_httpx=via_httpx)
        try:
            return [(await clients.send("GET", url + "/x")).status_code for _ in range(2)]
        finally:
            await clients.close()

    with recorder([answer] * 2, tls=tls) as server:
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        monkeypatch.delenv("SSL_CERT_DIR", raising=False)
        with pytest.raises(SourceError, match="^up refused the connection$"):
            run_on(loop, ask_twice(server.url))  # certifi's bundle does not know our CA
        monkeypatch.setenv("SSL_CERT_FILE", str(ca))
        assert run_on(loop, ask_twice(server.url)) == [200, 200]
        assert server.requests[0].startswith(b"GET /x HTTP/1.1\r\n")
        assert server.connections == 2  # the refused handshake's, then one kept alive for both requests


FRAMED = [
    # the body runs until the server closes the connection: no Content-Length, not chunked
    b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"result": []}',
    # an informational answer before the answer proper
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    # the server says it closes; no body at all
    b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n",
]


@pytest.mark.parametrize("loop", LOOPS)
def test_answers_framed_every_way_read_as_httpxs(loop: str) -> None:
    """A body delimited by the close, a 100 Continue first, a 204 that closes: read as httpx's client reads them."""

    async def three(clients: HttpClients, url: str) -> list[tuple[int, list[tuple[bytes, bytes]], bytes]]:
        try:
            responses = []
            for i in range(len(FRAMED)):
                responses.append(await clients.send("GET", url + f"/x{i}"))
                await asyncio.sleep(0.05)  # the server's close reaches us before the next request
        finally:
            await clients.close()
        return [(r.status_code, r.headers.raw, r.content) for r in responses]

    seen = []
    with recorder(FRAMED * 2, close=True) as server:
        for via_httpx in (True, False):
            clients = HttpClients("up", timeout=5, max_connections=2, via_httpx=via_httpx)
            seen.append(run_on(loop, three(clients, server.url)))
    assert seen[1] == seen[0]
    assert [status for status, _, _ in seen[1]] == [200, 200, 204]
    assert seen[1][0][2] == b'{"result": []}'


def test_an_answer_that_says_connection_close_leaves_its_connection_closed() -> None:
    """The server keeps the connection open, but said it would not: the next request opens a new one."""
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"
    kept = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    with recorder([closing, kept, kept]) as server:

        async def run() -> list[int]:
            clients = HttpClients("up", timeout=5, max_connections=2, via_httpx=False)
            try:
                return [(await clients.send("GET", server.url + "/x")).status_code for _ in range(3)]
            finally:
                await clients.close()

        assert run_on("uvloop", run()) == [200] * 3
        assert server.connections == 2  # the closing answer's, then one kept alive for the other two


def test_an_idle_connection_past_its_keepalive_is_not_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("numlookup.live.http.KEEPALIVE_SECONDS", 0.1)
    with Peer() as peer:

        async def run() -> None:
            clients = HttpClients("up", timeout=5, max_connections=4, auth=("u", "p"), via_httpx=False)
            try:
                await ask(clients, peer, "+37251000001")
                await ask(clients, peer, "+37251000002")  # at once: the same connection
                await asyncio.sleep(0.2)
                await ask(clients, peer, "+37251000003")  # after its keep-alive: a new one
            finally:
                await clients.close()

        asyncio.run(run())
        assert peer.connections == 2


@pytest.mark.parametrize("via_httpx", [True, False])
def test_an_answer_that_stops_coming_times_out(via_httpx: bool) -> None:
    """The head arrives, the body never does: after ``timeout`` without a byte, the source timed out."""
    stalled = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
    with recorder([stalled]) as server:
        assert failure(server.url, 0.3, via_httpx=via_httpx) == "up timed out after 0.3 s"


def test_a_request_given_up_mid_answer_leaves_no_answer_for_the_next() -> None:
    """A request cancelled while its answer is on the way: its connection is closed, not handed its late answer."""
    with Peer(delay=0.3) as peer:

        async def run() -> list[str]:
            clients = HttpClients("up", timeout=5, max_connections=1, auth=("u", "p"), via_httpx=False)
            try:
                first = asyncio.ensure_future(ask(clients, peer, "+37251000001"))
                await asyncio.sleep(0.1)
                first.cancel()
                answer = await ask(clients, peer, "+37251000002")
                return [item["number"] for item in answer.json()["result"]]
            finally:
                await clients.close()

        assert asyncio.run(run()) == ["+37251000002"]
        assert peer.connections == 2


@pytest.mark.parametrize("via_httpx", [True, False])
def test_an_answer_that_does_not_decode_fails_in_httpxs_words(via_httpx: bool) -> None:
    """A body that says it is gzip and is not: the same failure either way, not an unexpected exception."""
    bad = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 9\r\n\r\nnot gzip!"
    with recorder([bad]) as server:
        assert failure(server.url, 5, via_httpx=via_httpx) == "up failed (DecodingError)"


@pytest.mark.parametrize("loop", LOOPS)
def test_bytes_past_an_answer_leave_its_connection_closed(loop: str) -> None:
    """A server that sends the start of another answer after the one asked for, in the same write.

    Kept, the connection's parser would read the next request's answer as the
    rest of that stray one: the next request would be handed it.
    """
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    stray = b'HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n{"stale": "' % (11 + len(answer))
    with recorder([answer + stray, answer]) as server:

        async def run() -> list[bytes]:
            clients = HttpClients("up", timeout=5, max_connections=1, via_httpx=False)
            try:
                contents = []
                for _ in range(2):
                    contents.append((await clients.send("GET", server.url + "/x")).content)
                    await asyncio.sleep(0.05)
                return contents
            finally:
                await clients.close()

        assert run_on(loop, run()) == [b"{}", b"{}"]
        assert server.connections == 2


@pytest.mark.parametrize("value", ["key\r\nX-Injected: 1", "key\n", "key\x00", " key"])
@pytest.mark.parametrize("via_httpx", [True, False])
def test_a_header_httpx_would_refuse_is_not_sent(value: str, via_httpx: bool) -> None:
    """A configured header value (an API key read with its newline, say) that h11 refuses: refused on both paths.

    Written as it is, it would end the head early or add a header of its
    own; the failure's words name neither the value nor the header.
    """
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    with recorder([answer] * 2) as server:

        async def run() -> list[str]:
            words = []
            for settings, call in (({"apiKey": value}, None), (None, {"X-Call": value})):
                clients = HttpClients("up", timeout=5, max_connections=1, headers=settings, via_httpx=via_httpx)
                try:
                    await clients.send("POST", server.url + "/x", content=b"{}", headers=call)
                    words.append("answered")
                except SourceError as exc:
                    words.append(str(exc))
                finally:
                    await clients.close()
            return words

        assert run_on("uvloop", run()) == ["up failed (LocalProtocolError)"] * 2
        assert server.requests == []


@pytest.mark.parametrize("via_httpx", [True, False])
def test_an_answers_request_is_the_one_sent_when_asked_for(via_httpx: bool) -> None:
    """``response.request`` (made when asked for, on the direct path), ``url``, ``raise_for_status``: as httpx's."""
    answer = b"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    with recorder([answer]) as server:

        async def run() -> tuple[str, bytes, str, str]:
            clients = HttpClients("up", timeout=5, max_connections=1, auth=("u", "p"), via_httpx=via_httpx)
            try:
                response = await clients.send("POST", server.url + "/x", content=b"{}", params={"a": "b c"})
            finally:
                await clients.close()
            with pytest.raises(httpx.HTTPStatusError) as raised:
                response.raise_for_status()
            return str(raised.value.request.url), response.request.content, str(response.url), str(raised.value)

        url, content, response_url, words = run_on("uvloop", run())
    assert url == response_url == server.url + "/x?a=b+c"
    assert content == b"{}"
    assert words.startswith("Client error '404 Not Found' for url")


@pytest.mark.parametrize("loop", LOOPS)
def test_a_connection_made_after_its_pool_closed_is_closed_not_kept(loop: str) -> None:
    """The server stopping closes the pool while a request is still connecting: that connection is not left open."""
    from numlookup.live.connections import HttpFailure, Pool

    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    with recorder([answer]) as server:
        port = int(server.url.rsplit(":", 1)[1])

        async def run() -> tuple[str, int, int]:
            pool = Pool(2, 5.0, ssl.create_default_context())
            request = asyncio.ensure_future(pool.send(("http", "127.0.0.1", port), b"GET /x HTTP/1.1\r\n\r\n", 5.0))
            await asyncio.sleep(0)  # the request is connecting
            pool.close()
            with pytest.raises(HttpFailure) as refused:
                await request
            return refused.value.kind, pool.opened, len(pool._all)

        kind, opened, kept = run_on(loop, run())
        assert (kind, opened, kept) == ("connect", 0, 0)
        assert server.connections <= 1
