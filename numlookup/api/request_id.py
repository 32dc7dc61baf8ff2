"""Gives every request an id before anything else runs, stamps it on every response (a replayed one keeps its own),
turns an unexpected error into the wire's clean 500 (code 103), and writes the request log.

A pure ASGI middleware, so even a 404 or an unhandled error carries ``X-Request-Id``.
Errors are answered here rather than left to Starlette's outermost handler: that
one re-raises to the server, and uvicorn then closes the connection, so a client
reusing a keep-alive connection would see its next request fail unanswered.

The request log line is written here, not by uvicorn's access log, because only
here are the request id, the client the abuse guard settled on (``client_ip`` in
the scope state) and the authenticated account (``account``, set by the lookup
route) all known. A refused login adds why (``auth_failure``, an
``accounts.AuthFailure``) and the username presented (``username``, with control
characters escaped and its length bounded: it is the client's text); never the secret.
"""

from __future__ import annotations

import logging
import os
import time

import msgspec
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from numlookup.api.auth import CLIENT_IP
from numlookup.api.errors import server_error
from numlookup.logs import REQUEST_FIELDS, REQUEST_ID, json_line, printable, turn_json_handler
from numlookup.metrics import Metrics

log = logging.getLogger("numlookup.api")
request_log = logging.getLogger("numlookup.access")
SERVER_ERROR_BODY = msgspec.json.encode(server_error().body())
ACCOUNT = "account"  # the key in the request's scope state naming the authenticated account
AUTH_FAILURE = "auth_failure"  # ... why credentials were refused (an accounts.AuthFailure)
USERNAME = "username"  # ... the username those credentials presented
# Our usernames have 13 characters; what a client sends beyond this many is not worth a log line's room.
USERNAME_LOG_CHARACTERS = 64
# Request ids are time-ordered UUIDs (version 7); their random part is cut from one read of the OS's
# random source per this many: ``uuid.uuid4()`` made a system call for each, a few per cent of a loaded worker.
IDS_PER_READ = 512
RANDOM_BYTES = 10  # per id: the version's 4 bits and rand_a's 12, the variant's 2 and rand_b's 62


_VERSION_7 = bytes((b & 0x0F) | 0x70 for b in range(256))  # a byte's high nibble made 7
_VARIANT_RFC_4122 = bytes((b & 0x3F) | 0x80 for b in range(256))  # a byte's top two bits made 10


class _RequestIds:
    """Version 7 UUIDs (RFC 9562): the Unix time in milliseconds, then 74 random bits.

    Why time-ordered rather than random (version 4, as Messente's examples show):
    the ledger's unique index on ``request_id`` is a B-tree, and random keys put
    each of a batch's rows on a page of its own where ids in time order share
    one: a group commit of 34 charges into a grown ledger cost 1.6 times the
    wall and CPU time with random ids (``bench/ledger_ids.py``). Clients see a UUID as before; the wire promises
    only that it is present and unique. The id now tells when the server
    received the request, which its client knows already.

    Within one millisecond the ids are in random order (RFC 9562's plain
    method: no counter to keep across workers), enough for the index: a
    millisecond's rows land on the same page. The time's text is made once per
    millisecond; the random bytes are stamped with the version and variant
    (RFC 4122's, as ``uuid`` sets them) and written out as hex once per read, so
    an id is the time's text and three slices of the pool.
    """

    def __init__(self) -> None:
        self._pool = ""
        self._at = 0
        self._ms = -1
        self._time = ""  # the first two groups of the ids of millisecond ``_ms``, and a dash
        os.register_at_fork(after_in_child=self._forget)  # a forked worker must not reuse its parent's bytes

    def _forget(self) -> None:
        self._pool = ""
        self._at = 0

    @staticmethod
    def stamped(random: bytes) -> str:
        """``random`` (a multiple of 10 bytes) as the hex of as many ids' last 10 bytes, version and variant set."""
        pool = bytearray(random)
        # A byte table each, in C: the generator over the pool's bytes was 1 % of a request's bytecode.
        pool[0::RANDOM_BYTES] = pool[0::RANDOM_BYTES].translate(_VERSION_7)
        pool[2::RANDOM_BYTES] = pool[2::RANDOM_BYTES].translate(_VARIANT_RFC_4122)
        return pool.hex()

    def __call__(self) -> str:
        ms = time.time_ns() // 1_000_000
        if ms != self._ms:
            self._ms = ms
            self._time = f"{ms >> 16:08x}-{ms & 0xFFFF:04x}-"
        at = self._at
        if at >= len(self._pool):
            self._pool = self.stamped(os.urandom(RANDOM_BYTES * IDS_PER_READ))
            at = 0
        self._at = at + 2 * RANDOM_BYTES
        h = self._pool
        return "".join((self._time, h[at : at + 4], "-", h[at + 4 : at + 8], "-", h[at + 8 : at + 20]))


new_request_id = _RequestIds()


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp, *, access_log: bool = False, metrics: Metrics | None = None) -> None:
        self.app = app
        self.access_log = access_log
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())
        status: int | None = None
        started_at = time.perf_counter()
        # Not reset afterwards: uvicorn runs each request in a task of its own, whose
        # context ends with it, and uvicorn's own record of a request that escaped
        # (cancelled at the graceful-shutdown timeout) then still names the request.
        REQUEST_ID.set(request_id)

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers", [])
                # A replayed response (Idempotency-Key) keeps the id of the request that made it.
                for name, _ in headers:
                    if name.lower() == b"x-request-id":
                        break
                else:
                    message["headers"] = [*headers, header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error in %s %s", scope["method"], scope["path"], extra=_fields(scope, status))
            if status is not None:
                raise  # half a response is out: only closing the connection can tell the client
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(SERVER_ERROR_BODY)).encode()),
                    ],
                }
            )
            await send_with_id({"type": "http.response.body", "body": SERVER_ERROR_BODY})
        finally:
            if self.metrics is not None:
                self.metrics.request_done(route_label(scope), scope["method"], status, time.perf_counter() - started_at)
            if self.access_log:
                _log_request(scope, status, started_at)


def route_label(scope: Scope) -> str:
    """The route's template (``/admin/v1/datasets/{kind}``), never the raw path: metric labels stay few."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if not isinstance(path, str):
        return "unmatched"
    # Inside a Mount (the console's /console) the route's path is the mount's remainder: the mount's own
    # prefix, what root_path gained below the app's, goes in front.
    prefix: str = scope.get("root_path", "")[len(scope.get("app_root_path", "")) :]
    if isinstance(route, Mount) and prefix.endswith(path):
        prefix = prefix[: len(prefix) - len(path)]  # a mount that matched counts its own path in root_path already
    return prefix + path


def _fields(scope: Scope, status: int | None) -> dict[str, object]:
    """The request's log fields: who asked what, and what they got (status None: no response was started)."""
    state = scope.get("state", {})
    client = state.get(CLIENT_IP)
    if client is None and scope.get("client"):
        client = scope["client"][0]
    failure = state.get(AUTH_FAILURE)
    username = state.get(USERNAME)
    return {
        "request_id": state.get("request_id"),
        "method": scope["method"],
        "path": scope["path"],
        "status": status,
        "client": client,
        "account": state.get(ACCOUNT),
        "auth_failure": None if failure is None else str(failure),
        "username": None if username is None else printable(username, USERNAME_LOG_CHARACTERS),
    }


def _log_request(scope: Scope, status: int | None, started_at: float) -> None:
    fields = _fields(scope, status)
    fields["duration_ms"] = round((time.perf_counter() - started_at) * 1000, 3)
    write_request_line(fields)


def log_unread_request(request_id: str, status: int, client: str | None, seconds: float) -> None:
    """The request log's line for a request the server answered before it could be read: no method, path or account."""
    write_request_line(
        {"request_id": request_id, "status": status, "client": client, "duration_ms": round(seconds * 1000, 3)}
    )


def write_request_line(fields: dict[str, object]) -> None:
    """The request log's line from its fields (``logs.REQUEST_FIELDS``; ``status`` and ``duration_ms`` given)."""
    request_line(tuple(fields.get(name) for name in REQUEST_FIELDS), fields)


def request_line(line: tuple[object, ...], fields: dict[str, object] | None = None) -> None:
    """:func:`write_request_line` of the values of ``logs.REQUEST_FIELDS`` in its order; ``fields``: their dict.

    The fused edge writes every request's line from the values it holds: made into a
    dict first and read back by name, they were an eighth of the line's bytecode. The
    dict (``fields``, or one made of ``line``) is needed only for a record.
    """
    if not request_log.isEnabledFor(logging.INFO):
        return
    _, method, path, status, duration_ms, client, account, auth_failure, username = line
    message = "%s %s %s %.1fms client=%s account=%s"
    values: tuple[object, ...] = (
        method or "-",
        path or "-",
        status if status is not None else "-",
        duration_ms,
        client or "-",
        account or "-",
    )
    if auth_failure is not None:
        message += " auth_failure=%s username=%s"
        values += (auth_failure, username or "-")
    handler = turn_json_handler(request_log)
    if handler is not None:  # the usual set-up: the formatter's line, without a record
        handler.emit_line(json_line(request_log.name, message % values, line))
        return
    extra = fields if fields is not None else dict(zip(REQUEST_FIELDS, line, strict=True))
    # The record made directly: Logger.info would look up the calling frame for every request.
    record = request_log.makeRecord(request_log.name, logging.INFO, __file__, 0, message, values, None, None, extra)
    request_log.handle(record)
