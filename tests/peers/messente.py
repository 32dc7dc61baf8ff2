"""A real HTTP server on 127.0.0.1 that plays a Number Lookup API, or misbehaves on purpose.

Tests and the benchmark point numlookup's upstream source at it. It speaks
HTTP/1.1 over a real socket (keep-alive included) from its own thread and event
loop, so the server under test sees exactly what a remote peer would send:

- ``messente``: Messente-shaped answers after ``delay`` seconds, the status word
  per number from ``statuses`` (default ``default_status``), roaming networks
  from ``roaming``, ported networks from ``ported``, and for numbers in ``home``
  the network they are on while not ported (``currentNetwork``, as Messente
  sends it; without it the answer says nothing of porting), a per-number ``error``
  text from ``errors`` (any text: what an upstream's own words may be); with
  ``credentials`` set, a wrong Basic auth gets a 401 as Messente sends it;
- ``refuse``: nothing listens on the port (connection refused);
- ``reset``: reads the request, then closes with SO_LINGER 0 (a TCP RST);
- ``hang``: reads the request and never answers;
- ``garbage``: answers bytes that are not HTTP;
- ``http500`` / ``http401``: a JSON error body with that status;
- ``http429``: 429 with ``Retry-After: retry_after`` (a provider's rate limit);
- ``badjson``: HTTP 200 whose body is not JSON;
- ``deepjson``: HTTP 200 whose body is JSON nested 100,000 levels deep.

``mode`` may be changed while the peer runs (a source that recovers). With
``gate`` set, a Messente-shaped answer waits until the event is set: a test
holds a request in flight for as long as it needs, without timing.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

MODES = ("messente", "refuse", "reset", "hang", "garbage", "http500", "http401", "http429", "badjson", "deepjson")


@dataclass
class Peer:
    mode: str = "messente"
    delay: float = 0.0
    default_status: str = "ONLINE"
    statuses: Mapping[str, str | None] = field(default_factory=dict)  # None: a null status
    roaming: Mapping[str, str] = field(default_factory=dict)  # number → serving MCC/MNC
    ported: Mapping[str, str] = field(default_factory=dict)  # number → current MCC/MNC
    home: Mapping[str, str] = field(default_factory=dict)  # number → its network while not ported
    errors: Mapping[str, str] = field(default_factory=dict)  # number → the result's "error" text
    credentials: tuple[str, str] | None = None
    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)  # decoded bodies, in arrival order
    headers: list[dict[str, str]] = field(default_factory=list)  # their headers (names lowercased), likewise
    retry_after: int = 2  # seconds, in the 429 of mode http429
    gate: threading.Event | None = None  # answers wait until it is set

    def __post_init__(self) -> None:
        assert self.mode in MODES, self.mode
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._stopped: asyncio.Event | None = None
        self._held: socket.socket | None = None
        self.connections = 0
        self.hits = 0  # requests read, whatever the answer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> Peer:
        if self.mode == "refuse":
            # Bound but not listening: connections are refused, and the port stays
            # ours, so no server started later (another test's) can take it and answer.
            self._held = socket.socket()
            self._held.bind(("127.0.0.1", 0))
            self.port = self._held.getsockname()[1]
            return self
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            loop.run_until_complete(self._serve(ready))
            loop.close()

        self._thread = threading.Thread(target=run, name="peer", daemon=True)
        self._thread.start()
        assert ready.wait(10), "peer did not start"
        return self

    async def _serve(self, ready: threading.Event) -> None:
        self._stopped = asyncio.Event()
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", self.port, backlog=2048)
        self.port = self._server.sockets[0].getsockname()[1]
        ready.set()
        await self._stopped.wait()
        self._server.close()
        await self._server.wait_closed()

    def stop(self) -> None:
        if self._held is not None:
            self._held.close()
            self._held = None
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> Peer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- HTTP

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                headers, body = request
                if not await self._answer(headers, body, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            if not writer.is_closing():
                writer.close()

    async def _answer(self, headers: dict[str, str], body: bytes, writer: asyncio.StreamWriter) -> bool:
        """Write one answer; False closes the connection."""
        self.hits += 1
        mode = self.mode
        if mode == "reset":
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
            return False
        if mode == "hang":
            assert self._stopped is not None
            await self._stopped.wait()
            return False
        if mode == "garbage":
            writer.write(b"\x00\xffSSH-2.0-not-http\r\n\x17\x03\x03 garbage \xde\xad\xbe\xef\r\n\r\n")
            await writer.drain()
            return False
        if mode == "http500":
            return await _respond(writer, 500, {"error": {"code": 103, "description": "Server error"}})
        if mode == "http429":
            limited = {"error": {"code": 106, "description": "Too many requests"}}
            return await _respond(writer, 429, limited, {"Retry-After": str(self.retry_after)})
        if mode == "http401" or (self.credentials is not None and _basic(headers) != self.credentials):
            detail = {"code": 101, "description": "Access is restricted, wrong credentials or IP not whitelisted."}
            return await _respond(writer, 401, {"error": detail, "errors": [{"error": detail}]})
        if mode == "badjson":
            return await _respond(writer, 200, b'{"request_id": "x", "result": [{"number": ')
        if mode == "deepjson":
            return await _respond(
                writer, 200, b'{"request_id": "x", "result": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
            )
        try:
            numbers = json.loads(body)["numbers"]
        except (ValueError, KeyError, TypeError):
            return await _respond(writer, 400, {"error": {"code": 102, "description": "bad body"}})
        self.requests.append(json.loads(body))
        self.headers.append(headers)
        if self.gate is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.gate.wait, 60)
        if self.delay:
            await asyncio.sleep(self.delay)
        return await _respond(
            writer, 200, {"request_id": f"peer-{len(self.requests)}", "result": [self._result(n) for n in numbers]}
        )

    def _result(self, number: str) -> dict[str, Any]:
        roaming = self.roaming.get(number)
        ported = self.ported.get(number)
        current = ported or self.home.get(number)
        error = {"error": self.errors[number]} if number in self.errors else {}
        return {
            **error,
            "number": number,
            "status": self.statuses.get(number, self.default_status),
            "ported": ported is not None,
            "roaming": roaming is not None,
            "currentNetwork": _network(current) if current else None,
            "originalNetwork": None,
            "portedNetwork": _network(ported) if ported else None,
            "roamingNetwork": _network(roaming) if roaming else None,
        }


def _network(mccmnc: str) -> dict[str, str | None]:
    return {"mccmnc": mccmnc, "networkName": None, "countryName": None, "countryPrefix": None, "countryCode": None}


def _basic(headers: dict[str, str]) -> tuple[str, str] | None:
    value = headers.get("authorization", "")
    if not value.lower().startswith("basic "):
        return None
    user, _, password = base64.b64decode(value[6:]).decode().partition(":")
    return user, password


async def _read_request(reader: asyncio.StreamReader) -> tuple[dict[str, str], bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return headers, body


async def _respond(
    writer: asyncio.StreamWriter, status: int, body: object, headers: Mapping[str, str] | None = None
) -> bool:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    reason = HTTPStatus(status).phrase
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(payload)}\r\n{extra}\r\n"
    )
    writer.write(head.encode() + payload)
    await writer.drain()
    return True
