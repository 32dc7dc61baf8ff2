"""A real HTTP server on 127.0.0.1 that plays Infobip Number Lookup (``POST /number/1/query``), or misbehaves.

It answers with Infobip's own published examples (``infobip_examples.json``:
the spec's three 200 examples — normal, ported, roaming — Infobip's
absent-subscriber example, and variants derived from them for the other
statuses and errors; each entry names its source), with ``to`` set to the
number asked. It checks requests as Infobip does, and refuses what Infobip
refuses, with Infobip's error bodies:

- ``Authorization: App <api_key>`` (the spec's APIKeyHeader), else 401
  ``UNAUTHORIZED``;
- the path ``/number/1/query`` (else 404) and the method POST (else 405);
- a JSON body (``Content-Type: application/json``, else 415) of the shape
  ``NcQueryRequest``: ``{"to": [...]}``, 1 to 1,000 strings of digits in
  international format without ``+``; more than 1,000 gets Infobip's
  "Number of destinations is limited to 1000" 400, anything else its
  ``BAD_REQUEST``. Stricter than Infobip on purpose: unknown keys, a query
  string and a ``+`` are refused too, so the adapter never relies on Infobip
  tolerating them.

Modes (``mode`` may change while it runs): ``infobip`` (the above);
``refuse`` (nothing listens); ``reset`` (a TCP RST after the request);
``hang`` (never answers); ``garbage`` (bytes that are not HTTP); ``http401``,
``http403``, ``http500``, ``http429`` (with ``Retry-After: retry_after``):
the spec's bodies for those statuses; ``badjson`` (200, not JSON);
``badshape`` (200 JSON that is not an ``NcResponse``).
"""

from __future__ import annotations

import asyncio
import copy
import json
import socket
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

EXAMPLES: dict[str, Any] = json.loads((Path(__file__).parent / "infobip_examples.json").read_text())
ERRORS: dict[str, Any] = EXAMPLES["errors"]
PATH = "/number/1/query"
MAX_TO = 1000  # NcQueryRequest.to maxItems
MODES = (
    "infobip",
    "refuse",
    "reset",
    "hang",
    "garbage",
    "http401",
    "http403",
    "http500",
    "http429",
    "badjson",
    "badshape",
)
# Our own bodies where the spec gives none (a wrong path or method, a body that is not JSON).
NOT_FOUND = {"requestError": {"serviceException": {"messageId": "NOT_FOUND", "text": "Not found"}}}
NOT_ALLOWED = {"requestError": {"serviceException": {"messageId": "METHOD_NOT_ALLOWED", "text": "Method not allowed"}}}
UNSUPPORTED = {"requestError": {"serviceException": {"messageId": "UNSUPPORTED_MEDIA_TYPE", "text": "Unsupported"}}}
NOT_ACCEPTABLE = {"requestError": {"serviceException": {"messageId": "NOT_ACCEPTABLE", "text": "Not acceptable"}}}


def names() -> list[str]:
    """Every answer the peer can give: the published examples and the derived variants."""
    return [*EXAMPLES["examples"], *(name for name in EXAMPLES["variants"] if not name.startswith("_"))]


def result(name: str, to: str) -> dict[str, Any]:
    """The result ``name`` (an example or a variant of one) for the number ``to`` (digits, no ``+``)."""
    if name in EXAMPLES["examples"]:
        body: dict[str, Any] = copy.deepcopy(EXAMPLES["examples"][name]["result"])
    else:
        variant = EXAMPLES["variants"][name]
        body = result(variant["base"], to)
        body.update(copy.deepcopy(variant.get("set", {})))
        for key in variant.get("drop", ()):
            body.pop(key, None)
    body["to"] = to
    return body


@dataclass
class InfobipPeer:
    """``answers`` maps numbers (with or without ``+``) to an example or variant name; others get ``default``."""

    api_key: str = "peer-api-key"
    mode: str = "infobip"
    answers: Mapping[str, str] = field(default_factory=dict)
    default: str = "normal"
    retry_after: int = 2  # seconds, in mode http429
    reverse: bool = False  # results in the reverse of the asked order (the adapter matches them by ``to``)
    omit: frozenset[str] = frozenset()  # numbers (digits) left out of the results
    extra: tuple[str, ...] = ()  # numbers (digits) answered although nobody asked
    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)  # bodies of the requests answered 200
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
        """The API base, as an account's ``https://XXXXX.api.infobip.com``; the adapter appends the path."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> InfobipPeer:
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

        self._thread = threading.Thread(target=run, name="infobip-peer", daemon=True)
        self._thread.start()
        assert ready.wait(10), "infobip peer did not start"
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

    def __enter__(self) -> InfobipPeer:
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
        if mode in ("http401", "http403", "http500"):
            return await _respond(writer, int(mode[4:]), ERRORS[mode[4:]])
        if mode == "http429":
            return await _respond(writer, 429, ERRORS["429"], {"Retry-After": str(self.retry_after)})
        if headers.get("authorization") != f"App {self.api_key}":
            return await self._refuse(writer, 401, "credentials", ERRORS["401"])
        url = urlsplit(target)
        if url.path != PATH:
            return await self._refuse(writer, 404, f"path {url.path}", NOT_FOUND)
        if method != "POST":
            return await self._refuse(writer, 405, f"method {method}", NOT_ALLOWED, {"Allow": "POST"})
        if url.query:
            return await self._refuse(writer, 400, f"query {url.query}", ERRORS["400"])
        if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return await self._refuse(writer, 415, "content type", UNSUPPORTED)
        accept = headers.get("accept", "*/*")
        if "application/json" not in accept and "*/*" not in accept:
            return await self._refuse(writer, 406, f"accept {accept}", NOT_ACCEPTABLE)
        numbers, why = _numbers(body)
        if numbers is None:
            return await self._refuse(writer, 400, why, ERRORS["too_many" if why == "too many" else "400"])
        if mode == "badjson":
            return await _respond(writer, 200, b'{"results": [{"to": "4179')
        if mode == "badshape":
            return await _respond(writer, 200, {"results": {"to": numbers[0]}, "bulkId": 7})
        self.requests.append(json.loads(body))
        answered = [number for number in [*numbers, *self.extra] if number not in self.omit]
        results = [result(self._answers.get(number, self.default), number) for number in answered]
        if self.reverse:
            results.reverse()
        return await _respond(writer, 200, {"results": results, "bulkId": f"BULK-ID-peer-{len(self.requests)}"})

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


def _numbers(body: bytes) -> tuple[list[str] | None, str]:
    """The ``to`` list of an ``NcQueryRequest`` body, or None and why it is refused."""
    try:
        request = json.loads(body)
    except ValueError:
        return None, "not JSON"
    if not isinstance(request, dict) or set(request) != {"to"}:
        return None, f"keys {sorted(request) if isinstance(request, dict) else type(request).__name__}"
    to = request["to"]
    if not isinstance(to, list) or not to:
        return None, "to is not a non-empty array"
    if len(to) > MAX_TO:
        return None, "too many"
    if not all(isinstance(n, str) and n.isascii() and n.isdigit() for n in to):
        return None, "to holds something other than digits"
    return to, ""


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
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n{extra}\r\n"
    )
    writer.write(head.encode() + payload)
    await writer.drain()
    return True
