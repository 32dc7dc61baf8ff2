"""A real HTTP server on 127.0.0.1 that plays Twilio Lookup v2 (``GET /v2/PhoneNumbers/{PhoneNumber}``), or misbehaves.

It answers with Twilio's own published examples (``twilio_examples.json``:
the spec's ``fetch``, ``fetchInvalid``, ``fetchLineStatusActive``,
``fetchLineStatusInactive`` and ``fetchLineTypeIntelligence``, and package
values derived from them and from Twilio's docs; each entry names its source)
for the number asked: ``phone_number``, ``calling_country_code``,
``country_code``, ``national_format`` and ``url`` are that number's (from
phonenumbers, as Twilio's own validation gives them), the ``line_status`` and
``line_type_intelligence`` packages the ones chosen for it, each only when
``Fields`` asks for it (null otherwise, as in the spec's examples). A number
that is not valid gets the ``fetchInvalid`` shape with its reasons (the spec's
``ValidationError`` values) and no packages. It checks requests as Twilio does
and refuses what Twilio refuses, with Twilio's error bodies
(``{"code", "message", "more_info", "status"}``):

- HTTP Basic ``account_sid:auth_token`` (the spec's ``accountSid_authToken``),
  else 401 (20003, with a ``WWW-Authenticate`` challenge);
- the path ``/v2/PhoneNumbers/<E.164>`` (else 404, 20404) and the method GET
  (else 405, 20004). The path is percent-decoded as any server does, so
  ``+`` and ``%2B`` are the same; ``requests`` keeps the raw target, to check
  the adapter sends the ``+`` as Twilio's SDKs do (literally: twilio-python
  formats ``/PhoneNumbers/{phone_number}`` and requests leaves ``+`` alone);
- query parameters among the spec's, each once; ``Fields`` a comma-separated
  list of the field names the spec documents (else 400, 20001).

Stricter than Twilio on purpose: a path number other than ``+`` and digits
(Twilio would read it in national format, US by default) and a query
parameter the spec does not list are refused too, so the adapter never relies
on Twilio guessing.

Modes (``mode`` may change while it runs): ``twilio`` (the above); ``refuse``
(nothing listens); ``reset`` (a TCP RST after the request); ``hang`` (never
answers); ``garbage`` (bytes that are not HTTP); ``http401``, ``http403``,
``http500``, ``http429`` (with ``Retry-After: retry_after``): Twilio's bodies
for those statuses; ``badjson`` (200, not JSON); ``badshape`` (200 JSON that is
not a ``LookupResponse``); ``othernumber`` (200, the answer of another number).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
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
from urllib.parse import parse_qs, unquote, urlsplit

import phonenumbers

FIXTURE: dict[str, Any] = json.loads((Path(__file__).parent / "twilio_examples.json").read_text())
EXAMPLES: dict[str, Any] = FIXTURE["examples"]
ERRORS: dict[str, Any] = FIXTURE["errors"]
QUERY_PARAMETERS: frozenset[str] = frozenset(FIXTURE["request"]["query_parameters"])
FIELDS: frozenset[str] = frozenset(FIXTURE["request"]["fields"])
PATH = "/v2/PhoneNumbers/"
PACKAGES = ("line_status", "line_type_intelligence")
MODES = (
    "twilio",
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
    "othernumber",
)
# phonenumbers' reasons a number is not possible → the spec's ValidationError values.
_REASONS = {
    phonenumbers.ValidationResult.TOO_SHORT: "TOO_SHORT",
    phonenumbers.ValidationResult.TOO_LONG: "TOO_LONG",
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "INVALID_COUNTRY_CODE",
    phonenumbers.ValidationResult.INVALID_LENGTH: "INVALID_LENGTH",
}


def names(package: str) -> list[str]:
    """Every value the peer can give for ``package``: the spec's and the derived ones."""
    return [name for name in FIXTURE[package] if not name.startswith("_")]


def package(kind: str, name: str) -> dict[str, Any] | None:
    """The value ``name`` of the package ``kind`` (``line_status`` or ``line_type_intelligence``)."""
    entry = FIXTURE[kind][name]
    value: dict[str, Any] | None = EXAMPLES[entry["example"]]["value"][kind] if "example" in entry else entry["value"]
    return copy.deepcopy(value)


def validation_errors(e164: str) -> list[str]:
    """Why Twilio would call ``e164`` not valid (the spec's ValidationError values); empty when it is valid."""
    try:
        parsed = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return ["NOT_A_NUMBER"]
    possible = phonenumbers.is_possible_number_with_reason(parsed)
    if possible in _REASONS:
        return [_REASONS[possible]]
    return [] if phonenumbers.is_valid_number(parsed) else ["INVALID_BUT_POSSIBLE"]


def lookup(e164: str, fields: set[str], line_status: str, line_type: str, base_url: str) -> dict[str, Any]:
    """The LookupResponse for ``e164`` with the packages ``fields`` asks for: valid, or ``fetchInvalid``'s shape."""
    reasons = validation_errors(e164)
    if reasons:
        body: dict[str, Any] = copy.deepcopy(EXAMPLES["fetchInvalid"]["value"])
        body["validation_errors"] = reasons
    else:
        body = copy.deepcopy(EXAMPLES["fetch"]["value"])
        parsed = phonenumbers.parse(e164)
        body["calling_country_code"] = str(parsed.country_code)
        body["country_code"] = phonenumbers.region_code_for_number(parsed)
        body["national_format"] = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
        chosen = {"line_status": line_status, "line_type_intelligence": line_type}
        for kind in PACKAGES:
            if kind in fields:
                body[kind] = package(kind, chosen[kind])
    body["phone_number"] = e164
    body["url"] = f"{base_url}{PATH}{e164}"
    return body


def forced_invalid(e164: str, base_url: str) -> dict[str, Any]:
    """The spec's ``fetchInvalid`` answer (``TOO_LONG``) for ``e164``, whatever it is."""
    body: dict[str, Any] = copy.deepcopy(EXAMPLES["fetchInvalid"]["value"])
    body["phone_number"] = e164
    body["url"] = f"{base_url}{PATH}{e164}"
    return body


def error(status: int, path: str = "") -> dict[str, Any]:
    body: dict[str, Any] = copy.deepcopy(ERRORS[str(status)]["body"])
    body["message"] = body["message"].replace("{path}", path)
    return body


@dataclass
class TwilioPeer:
    """``line_status`` / ``line_type`` map E.164 numbers to a package value name; others get the defaults.

    ``invalid`` numbers get the spec's ``fetchInvalid`` answer even when they are valid.
    """

    account_sid: str = "AC00000000000000000000000000000000"
    auth_token: str = "peer-auth-token"
    mode: str = "twilio"
    line_status: Mapping[str, str] = field(default_factory=dict)
    line_type: Mapping[str, str] = field(default_factory=dict)
    default_line_status: str = "active"  # the spec's fetchLineStatusActive
    default_line_type: str = "nonFixedVoip"  # the spec's fetchLineTypeIntelligence
    invalid: frozenset[str] = frozenset()
    retry_after: int = 2  # seconds, in mode http429
    port: int = 0
    requests: list[str] = field(default_factory=list)  # raw request targets answered 200
    refusals: list[tuple[int, str]] = field(default_factory=list)  # (status, why) of each request refused

    def __post_init__(self) -> None:
        assert self.mode in MODES, self.mode
        unknown_status = (set(self.line_status.values()) | {self.default_line_status}) - set(names("line_status"))
        unknown_type = (set(self.line_type.values()) | {self.default_line_type}) - set(names("line_type_intelligence"))
        assert not unknown_status and not unknown_type, (unknown_status, unknown_type)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self._held: socket.socket | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self.hits = 0  # requests read, whatever the answer
        self.headers: list[dict[str, str]] = []  # every request's headers, in arrival order

    @property
    def url(self) -> str:
        """The API base, as ``https://lookups.twilio.com``; the adapter appends ``/v2/PhoneNumbers/…``."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TwilioPeer:
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

        self._thread = threading.Thread(target=run, name="twilio-peer", daemon=True)
        self._thread.start()
        assert ready.wait(10), "twilio peer did not start"
        return self

    async def _serve(self, ready: threading.Event) -> None:
        self._stopped = asyncio.Event()
        server = await asyncio.start_server(self._connection, "127.0.0.1", self.port)
        self.port = server.sockets[0].getsockname()[1]
        ready.set()
        await self._stopped.wait()
        server.close()
        # Let the connections still open (a hung one among them) close before the loop goes.
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await server.wait_closed()

    def stop(self) -> None:
        if self._held is not None:
            self._held.close()
            self._held = None
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> TwilioPeer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # ---------------------------------------------------------------- HTTP

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        self._writers.add(writer)
        try:
            while (request := await _read_request(reader)) is not None:
                if not await self._answer(*request, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self._writers.discard(writer)
            self._handlers.discard(handler)

    async def _answer(self, method: str, target: str, headers: dict[str, str], writer: asyncio.StreamWriter) -> bool:
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
            status = int(mode[4:])
            return await _respond(writer, status, error(status), ERRORS[str(status)].get("headers"))
        if mode == "http429":
            return await _respond(writer, 429, error(429), {"Retry-After": str(self.retry_after)})
        if _basic(headers) != (self.account_sid, self.auth_token):
            return await self._refuse(writer, 401, "credentials", error(401), ERRORS["401"]["headers"])
        url = urlsplit(target)
        path = unquote(url.path)
        if not path.startswith(PATH) or "/" in path[len(PATH) :] or not path[len(PATH) :]:
            return await self._refuse(writer, 404, f"path {path}", error(404, path))
        if method != "GET":
            return await self._refuse(writer, 405, f"method {method}", error(405), {"Allow": "GET"})
        number = path[len(PATH) :]
        if not (number.startswith("+") and number[1:].isascii() and number[1:].isdigit()):
            return await self._refuse(writer, 404, f"number {number}", error(404, path))
        fields, why = _fields(url.query)
        if fields is None:
            return await self._refuse(writer, 400, why, error(400))
        if mode == "badjson":
            return await _respond(writer, 200, b'{"calling_country_code": "44", "line_status": {"status": ')
        if mode == "badshape":
            return await _respond(writer, 200, {"phone_number": number, "valid": "yes", "line_status": "reachable"})
        self.requests.append(target)
        asked = "+14159929960" if mode == "othernumber" else number
        if asked in self.invalid:
            return await _respond(writer, 200, forced_invalid(asked, self.url))
        body = lookup(
            asked,
            fields,
            self.line_status.get(asked, self.default_line_status),
            self.line_type.get(asked, self.default_line_type),
            self.url,
        )
        return await _respond(writer, 200, body)

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


def _fields(query: str) -> tuple[set[str] | None, str]:
    """The field names ``Fields`` asks for (empty when not given), or None and why the query is refused."""
    try:
        params = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        return None, f"query {query}"
    unknown = set(params) - QUERY_PARAMETERS
    if unknown:
        return None, f"parameters {sorted(unknown)}"
    if any(len(values) > 1 for values in params.values()):
        return None, "a parameter given twice"
    if "Fields" not in params:
        return set(), ""
    asked = params["Fields"][0].split(",")
    if not all(name in FIELDS for name in asked):
        return None, f"Fields {params['Fields'][0]}"
    return set(asked), ""


def _basic(headers: dict[str, str]) -> tuple[str, str] | None:
    value = headers.get("authorization", "")
    if not value.lower().startswith("basic "):
        return None
    try:
        user, sep, password = base64.b64decode(value[6:], validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (user, password) if sep else None


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str]] | None:
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
    await reader.readexactly(int(headers.get("content-length", "0")))  # a GET has none; read what is sent
    return method, target, headers


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
