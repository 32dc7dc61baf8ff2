"""A real HTTP server on 127.0.0.1 that plays tyntec GNV (``GET /nis/v1/gnv?msisdn=…``), or misbehaves.

It answers with tyntec's own published example (``tyntec_examples.json``: the
spec's ``GnvResponse`` as its property examples make it) and variants derived
from it for the other presence, porting, roaming and error values (each entry
names its source), with ``msisdn`` set to the number asked. It checks requests
as the spec describes them, and refuses the rest with RFC 7807 Problem bodies
made from the spec's response descriptions:

- the ``apiKey`` header (the spec's APIKeyHeader): missing, 403 "Authorization
  information is missing."; wrong, 401 "Invalid account credentials";
- the path ``/nis/v1/gnv`` (else 404) and the method GET (else 405);
- the query: ``msisdn`` once, in international format (``+`` and 7 to 15 digits,
  or the digits alone as tyntec's reference examples write it; a ``+`` sent
  unencoded reads as a space and is refused), and optionally ``callbackUrl``
  (an http(s) URL: the answer is then the asynchronous one, the requestId only).
  Anything else is a 400 "An error in MSISDN or in the callback URL". Stricter
  than tyntec may be on purpose: unknown parameters, a repeated one and a body
  are refused too, so the adapter never relies on tyntec tolerating them.
- ``malformed``: numbers refused with that 400 although well formed (tyntec's
  own consistency check disagreeing with ours).

Modes (``mode`` may change while it runs): ``tyntec`` (the above); ``refuse``
(nothing listens); ``reset`` (a TCP RST after the request); ``hang`` (never
answers); ``garbage`` (bytes that are not HTTP); ``http401``, ``http402`` (no
credit), ``http403``, ``http500``, ``http429`` (with ``Retry-After:
retry_after``): their Problem bodies; ``badjson`` (200, not JSON); ``badshape``
(200 JSON that is not a ``GnvResponse``).
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
import socket
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

EXAMPLES: dict[str, Any] = json.loads((Path(__file__).parent / "tyntec_examples.json").read_text())
ERRORS: dict[str, Any] = EXAMPLES["errors"]
PATH = "/nis/v1/gnv"
PARAMETERS = frozenset({"msisdn", "callbackUrl"})
MSISDN = re.compile(r"\+?[1-9][0-9]{6,14}")
MODES = (
    "tyntec",
    "refuse",
    "reset",
    "hang",
    "garbage",
    "http401",
    "http402",
    "http403",
    "http500",
    "http429",
    "badjson",
    "badshape",
)
# Our own bodies where the spec gives none (a wrong path, method or Accept).
NOT_FOUND = {"type": "about:blank", "title": "Not Found", "status": 404}
NOT_ALLOWED = {"type": "about:blank", "title": "Method Not Allowed", "status": 405}
NOT_ACCEPTABLE = {"type": "about:blank", "title": "Not Acceptable", "status": 406}


def names() -> list[str]:
    """Every answer the peer can give: the published example and the derived variants."""
    return [*EXAMPLES["examples"], *(name for name in EXAMPLES["variants"] if not name.startswith("_"))]


def result(name: str, msisdn: str) -> dict[str, Any]:
    """The answer ``name`` (the example or a variant of it) for ``msisdn`` (``+`` and digits)."""
    if name in EXAMPLES["examples"]:
        body: dict[str, Any] = copy.deepcopy(EXAMPLES["examples"][name]["result"])
        body["msisdn"] = msisdn
        return body
    variant = EXAMPLES["variants"][name]
    if "body" in variant:
        whole: dict[str, Any] = copy.deepcopy(variant["body"])
        return whole
    body = result(variant["base"], msisdn)
    body.update(copy.deepcopy(variant.get("set", {})))
    for key in variant.get("drop", ()):
        body.pop(key, None)
    return body


@dataclass
class TyntecPeer:
    """``answers`` maps numbers (with or without ``+``) to the example or a variant name; others get ``default``."""

    api_key: str = "peer-api-key"
    mode: str = "tyntec"
    answers: Mapping[str, str] = field(default_factory=dict)
    default: str = "gnv"
    retry_after: int = 2  # seconds, in mode http429
    malformed: frozenset[str] = frozenset()  # numbers (digits) refused with the spec's 400
    port: int = 0
    requests: list[dict[str, str]] = field(default_factory=list)  # query parameters of the requests answered 200
    targets: list[str] = field(default_factory=list)  # the request target of each answered request, as sent
    refusals: list[tuple[int, str]] = field(default_factory=list)  # (status, why) of each request refused

    def __post_init__(self) -> None:
        assert self.mode in MODES, self.mode
        unknown = set(self.answers.values()) | {self.default}
        assert unknown <= set(names()), unknown - set(names())
        self._answers = {number.lstrip("+"): name for number, name in self.answers.items()}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._held: socket.socket | None = None
        self.hits = 0  # requests read, whatever the answer
        self.headers: list[dict[str, str]] = []  # every request's headers, in arrival order

    @property
    def url(self) -> str:
        """The API base, as ``https://api.tyntec.com``; the adapter appends ``/nis/v1/gnv``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TyntecPeer:
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

        self._thread = threading.Thread(target=run, name="tyntec-peer", daemon=True)
        self._thread.start()
        assert ready.wait(10), "tyntec peer did not start"
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

    def __enter__(self) -> TyntecPeer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- HTTP

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (request := await _read_request(reader)) is not None:
                if not await self._answer(*request, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            if not writer.is_closing():
                writer.close()

    async def _answer(
        self, method: str, target: str, headers: dict[str, str], body: bytes, writer: asyncio.StreamWriter
    ) -> bool:
        """Write one answer; False closes the connection."""
        self.hits += 1
        self.headers.append(headers)
        mode = self.mode
        if mode == "reset":
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
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
        if mode in ("http401", "http402", "http403", "http500"):
            return await _respond(writer, int(mode[4:]), ERRORS[mode[4:]])
        if mode == "http429":
            return await _respond(writer, 429, ERRORS["429"], {"Retry-After": str(self.retry_after)})
        key = headers.get("apikey")
        if not key:
            return await self._refuse(writer, 403, "no apiKey", ERRORS["403"])
        if key != self.api_key:
            return await self._refuse(writer, 401, "credentials", ERRORS["401"])
        url = urlsplit(target)
        if url.path != PATH:
            return await self._refuse(writer, 404, f"path {url.path}", NOT_FOUND)
        if method != "GET":
            return await self._refuse(writer, 405, f"method {method}", NOT_ALLOWED, {"Allow": "GET"})
        accept = headers.get("accept", "*/*")
        if "application/json" not in accept and "*/*" not in accept:
            return await self._refuse(writer, 406, f"accept {accept}", NOT_ACCEPTABLE)
        if body:
            return await self._refuse(writer, 400, "a body", ERRORS["400"])
        query, why = _query(url.query)
        if query is None:
            return await self._refuse(writer, 400, why, ERRORS["400"])
        digits = query["msisdn"].lstrip("+")
        if digits in self.malformed:
            return await self._refuse(writer, 400, "malformed", ERRORS["400"])
        if mode == "badjson":
            return await _respond(writer, 200, b'{"requestId": "12-86cf", "msisdn": "+4916')
        if mode == "badshape":
            return await _respond(writer, 200, [{"msisdn": query["msisdn"], "presence": {"on": True}}])
        self.requests.append(query)
        self.targets.append(target)
        name = "asynchronous" if "callbackUrl" in query else self._answers.get(digits, self.default)
        return await _respond(writer, 200, result(name, f"+{digits}"))

    async def _refuse(
        self,
        writer: asyncio.StreamWriter,
        status: int,
        why: str,
        body: object,
        headers: Mapping[str, str] | None = None,
    ) -> bool:
        self.refusals.append((status, why))
        return await _respond(writer, status, body, headers)


def _query(text: str) -> tuple[dict[str, str] | None, str]:
    """The query parameters of a GNV request, or None and why it is refused."""
    pairs = parse_qsl(text, keep_blank_values=True)
    names = [name for name, _ in pairs]
    if unknown := set(names) - PARAMETERS:
        return None, f"unknown parameters {sorted(unknown)}"
    if len(names) != len(set(names)):
        return None, "a repeated parameter"
    query = dict(pairs)
    if "msisdn" not in query:
        return None, "no msisdn"
    if not MSISDN.fullmatch(query["msisdn"]):
        return None, f"msisdn {query['msisdn']!r}"
    if "callbackUrl" in query and urlsplit(query["callbackUrl"]).scheme not in ("http", "https"):
        return None, "callbackUrl"
    return query, ""


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str], bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return method, target, headers, body


async def _respond(
    writer: asyncio.StreamWriter, status: int, body: object, headers: Mapping[str, str] | None = None
) -> bool:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    kind = "application/json" if status < 400 else "application/problem+json"
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: {kind}\r\n"
        f"Content-Length: {len(payload)}\r\n{extra}\r\n"
    )
    writer.write(head.encode() + payload)
    await writer.drain()
    return True
