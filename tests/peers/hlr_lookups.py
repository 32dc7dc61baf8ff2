"""A real HTTP server on 127.0.0.1 that plays HLR-Lookups.com API v2, as strictly as the provider, or misbehaves.

It answers ``POST /api/v2/hlr-lookup`` with the provider's documented answer
(``hlr_lookups.json``: the SDK README's object for +14156226819, and variants
derived from it for other numbers) and ``GET /api/v2/time`` with its clock,
and checks every lookup the way the provider does, recomputing the signature
on its own from the SDK's recipe (never with the code under test):

- ``X-Digest-Key`` missing or not the account's key: 401;
- ``X-Digest-Timestamp`` missing, not Unix seconds, or more than ``tolerance``
  seconds (60) from the peer's clock, in the past or the future: 401;
- ``X-Digest-Signature`` missing or not hex HMAC-SHA256(secret, ``/hlr-lookup``
  + timestamp + ``POST`` + the body bytes): 401;
- a body that is not a JSON object ``{"msisdn": "+<digits>"}`` (the documented
  optional ``route``/``storage`` strings allowed), more than one number, another
  content type, a query string: 400; another method: 405; another path: 404.

Error bodies are ``{"errors": [<message>]}``: the SDK and the documentation
excerpts available here show no error body, so that shape is our assumption,
and the source under test reads only the HTTP status.

``mode`` makes it misbehave (and may change while it runs): ``refuse`` (nothing
listens), ``reset`` (TCP RST after reading), ``hang`` (never answers), ``garbage``
(bytes that are not HTTP), ``http500``/``http402``/``http403``, ``http429`` (with
``Retry-After: retry_after``), ``badjson`` (a lookup answered with truncated
JSON), ``notlookup`` (a JSON object that is no lookup result), ``badtime`` (GET
/time answers no time). ``clock_offset`` sets the peer's clock ahead (positive)
or behind ours, as a provider whose clock differs from this host's.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import socket
import struct
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

FIXTURE: dict[str, Any] = json.loads((Path(__file__).parent / "hlr_lookups.json").read_text())
DOCUMENTED: dict[str, Any] = FIXTURE["documented"]
DOCUMENTED_NUMBER = DOCUMENTED["msisdn"]
VARIANTS: dict[str, dict[str, Any]] = {n: v for n, v in FIXTURE["variants"].items() if not n.startswith("_")}
DEFAULT: dict[str, Any] = {k: v for k, v in FIXTURE["default"].items() if not k.startswith("_")}

KEY = "peer-api-key-0d6c4f"
SECRET = "peer-api-secret-never-shown-91ab7e"
MODES = (
    *("answer", "refuse", "reset", "hang", "garbage"),
    *("http500", "http402", "http403", "http429", "badjson", "notlookup", "badtime"),
)
_MSISDN = re.compile(r"\+[0-9]{6,15}")  # E.164: at most 15 digits
_OPTIONAL = {"route", "storage"}  # the documented optional request fields, both strings
LOOKUP, TIME = "/api/v2/hlr-lookup", "/api/v2/time"


def expected_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The SDK's ``hash_hmac('sha256', $path . $timestamp . $method . $body, $secret)`` for a lookup."""
    return hmac.new(secret.encode(), b"/hlr-lookup" + timestamp.encode() + b"POST" + body, hashlib.sha256).hexdigest()


def provider_time(moment: datetime) -> str:
    """A time as the provider writes ``timestamp``: ``2020-08-07 19:16:17.676+0300``."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}" + moment.strftime("%z")


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HlrLookupsPeer:
    mode: str = "answer"
    key: str = KEY
    secret: str = SECRET
    tolerance: float = 60.0  # seconds a timestamp may be from the peer's clock, either way
    clock_offset: float = 0.0  # the peer's clock minus ours
    overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # number → fields changed
    retry_after: int = 2
    delay: float = 0.0
    port: int = 0
    lookups: list[dict[str, Any]] = field(default_factory=list)  # bodies of the lookups answered, in order
    refusals: list[tuple[int, str]] = field(default_factory=list)  # (status, why) of each request refused

    def __post_init__(self) -> None:
        assert self.mode in MODES, self.mode
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._held: socket.socket | None = None
        self.hits = 0  # requests read, whatever the answer
        self.time_calls = 0  # GET /api/v2/time requests answered

    @property
    def url(self) -> str:
        """The provider's base, as the ``url`` setting takes it."""
        return f"http://127.0.0.1:{self.port}"

    def now(self) -> float:
        return time.time() + self.clock_offset

    def start(self) -> HlrLookupsPeer:
        if self.mode == "refuse":  # bound, not listening: refused, and no later server can take the port
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

        self._thread = threading.Thread(target=run, name="hlr-lookups-peer", daemon=True)
        self._thread.start()
        assert ready.wait(10), "peer did not start"
        return self

    async def _serve(self, ready: threading.Event) -> None:
        self._stopped = asyncio.Event()
        server = await asyncio.start_server(self._connection, "127.0.0.1", self.port)
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        await self._stopped.wait()
        server.close()
        await server.wait_closed()

    def stop(self) -> None:
        if self._held is not None:
            self._held.close()
            self._held = None
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> HlrLookupsPeer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- HTTP

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (request := await _read_request(reader)) is not None:
                if not await self._answer(request, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            if not writer.is_closing():
                writer.close()

    async def _answer(self, request: Request, writer: asyncio.StreamWriter) -> bool:
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
            return await _respond(writer, 500, {"errors": ["Internal Server Error"]})
        if mode == "http402":
            return await _respond(writer, 402, {"errors": ["Insufficient balance"]})
        if mode == "http403":
            return await _respond(writer, 403, {"errors": ["Forbidden"]})
        if mode == "http429":
            limited = {"errors": ["Too Many Requests"]}
            return await _respond(writer, 429, limited, {"Retry-After": str(self.retry_after)})
        status, answer = self._handle(request)
        if self.delay:
            await asyncio.sleep(self.delay)
        return await _respond(writer, status, answer)

    def _handle(self, request: Request) -> tuple[int, object]:
        """(status, body) for a well-formed HTTP request, checked as the provider checks it."""
        path, query = urlsplit(request.target).path, urlsplit(request.target).query
        if path == TIME and request.method == "GET":
            self.time_calls += 1
            return (200, b'{"time": "soon"') if self.mode == "badtime" else (200, {"time": int(self.now())})
        if path not in (LOOKUP, TIME):
            return self._refuse(404, "Not Found")
        if request.method != "POST" or path != LOOKUP:
            return self._refuse(405, "Method Not Allowed")
        if query:
            return self._refuse(400, "unexpected query parameters")
        refused = self._authenticate(request)
        if refused is not None:
            return self._refuse(401, refused)
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return self._refuse(400, "the body must be application/json")
        try:
            body = json.loads(request.body)
        except ValueError:
            return self._refuse(400, "the body is not JSON")
        if not isinstance(body, dict) or set(body) - {"msisdn"} - _OPTIONAL:
            return self._refuse(400, "the body must be an object with msisdn (and optionally route, storage)")
        msisdn = body.get("msisdn")
        if not isinstance(msisdn, str):
            return self._refuse(400, "msisdn must be one number, a string")  # a list: more than one number
        if not _MSISDN.fullmatch(msisdn):
            return self._refuse(400, "msisdn must be + and 6 to 15 digits")
        if any(not isinstance(body[name], str) for name in _OPTIONAL & set(body)):
            return self._refuse(400, "route and storage must be strings")
        self.lookups.append(body)
        if self.mode == "badjson":
            return 200, b'{"id": "f94ef092cb53", "msisdn": "' + msisdn.encode()
        if self.mode == "notlookup":
            return 200, {"id": uuid.uuid4().hex[:12], "success": True}
        return 200, self.result(msisdn)

    def _authenticate(self, request: Request) -> str | None:
        """Why the digest headers are refused, or None when they are the account's and fresh."""
        key = request.headers.get("x-digest-key")
        timestamp = request.headers.get("x-digest-timestamp")
        given = request.headers.get("x-digest-signature")
        if not key:
            return "missing X-Digest-Key"
        if not hmac.compare_digest(key.encode(), self.key.encode()):
            return "unknown X-Digest-Key"
        if not timestamp or not timestamp.isdigit():
            return "X-Digest-Timestamp must be Unix seconds"
        skew = int(timestamp) - self.now()
        if abs(skew) > self.tolerance:
            return f"X-Digest-Timestamp is {abs(skew):.0f} s in the {'future' if skew > 0 else 'past'}"
        if not given:
            return "missing X-Digest-Signature"
        if not hmac.compare_digest(given.encode(), expected_signature(self.secret, timestamp, request.body).encode()):
            return "X-Digest-Signature does not match"
        return None

    def _refuse(self, status: int, why: str) -> tuple[int, object]:
        self.refusals.append((status, why))
        return status, {"errors": [why]}

    def result(self, msisdn: str) -> dict[str, Any]:
        """The documented answer for its number; for another, a variant of it (fresh id and timestamp)."""
        if msisdn == DOCUMENTED_NUMBER:
            base = dict(DOCUMENTED)
        else:
            moment = datetime.fromtimestamp(self.now(), UTC)
            base = {
                **DOCUMENTED,
                **(VARIANTS.get(msisdn) or DEFAULT),
                "id": uuid.uuid4().hex[:12],
                "msisdn": msisdn,
                "timestamp": provider_time(moment),
                "storage": f"SYNC-API-{moment:%Y-%m}",
            }
        return {**base, **self.overrides.get(msisdn, {})}


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(method, target, headers, body)


async def _respond(
    writer: asyncio.StreamWriter, status: int, body: object, headers: Mapping[str, str] | None = None
) -> bool:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n{extra}\r\n"
    )
    writer.write(head.encode() + payload)
    await writer.drain()
    return True
