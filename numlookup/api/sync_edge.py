"""``POST /v1/hlr/sync`` answered by one ASGI callable: the edge's layers and the route fused into one frame.

Why: nearly every request a node serves is this one, and under load the layers
around it cost about as much as a whole request of a raw ASGI app: the request
id middleware, the abuse guard and the direct route each wrapped ``send`` (and
the guard ``receive``) in a closure of its own, were resumed at every await of
the request, and the route built a Starlette ``Request`` (whose ``Headers``
scan and decode the header list again for every lookup) and a ``Response``.
Here the header list is read once, the checks run in the order the layers ran
them, and the response's two messages go straight to the server.

What it does, in the order of the general stack (``api.request_id`` →
``api.limits.AbuseGuard`` → ``api.direct`` → ``api.lookup``): a request id (on
the response, the request log line and :data:`numlookup.logs.REQUEST_ID`); the
guard's checks, through the same guard object (``AbuseGuard.admit``: one
rate-limit state for both paths); credentials (``lookup.verify_basic``); the
content type; the body, through the guard's ``BoundedBody`` (its limit and
deadline); decode; then ``lookup.answer_lookup`` (idempotency key, resolve, quote,
live, render, charge). Errors are answered as the general stack answers them:
an ``ApiError`` with its wire body, anything else with the clean 500. Then the
metrics and the request log line.

Every other request (another path, another method on this one, lifespan) goes
on to the general stack unchanged. ``tests/e2e/test_sync_edge.py`` sends a
corpus of requests to a server with this path and to one without and holds
status, headers, body, log lines, metrics and ledger rows equal.

The edge's work is :meth:`SyncEdge.serve`, on the request's header list, peer and
body ``receive``, giving the whole response to a ``respond`` callable; the ASGI
``__call__`` is a thin way in, and the server's plain path
(``serving.PlainCycle``, which finds the edge in the lifespan state under
:data:`LIFESPAN_KEY`) the other: for a plain request uvicorn's scope, its ASGI
messages and Starlette's dispatch cost more than this frame. One implementation,
two callers; the same test file holds their bytes on the wire equal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from starlette.requests import ClientDisconnect
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from numlookup.accounts import AuthFailure
from numlookup.api.errors import ApiError, error_response, unauthorized
from numlookup.api.idempotency import Stored
from numlookup.api.limits import AbuseGuard, BoundedBody, GuardHeaders
from numlookup.api.lookup import JSON, answer_lookup, check_content_type, decode_numbers, verify_basic
from numlookup.api.proxies import limit_key
from numlookup.api.request_id import (
    SERVER_ERROR_BODY,
    USERNAME_LOG_CHARACTERS,
    new_request_id,
    request_line,
    route_label,
)
from numlookup.api.state import AppState
from numlookup.logs import REQUEST_FIELDS, REQUEST_ID, printable

log = logging.getLogger("numlookup.api")
METHOD = "POST"
_JSON = JSON.encode()
_CONNECTION_CLOSE = (b"connection", b"close")
# The lifespan state's key under which the edge offers itself to the server (serving.py reads the same name).
LIFESPAN_KEY = "numlookup.sync_edge"
# Sends a whole response: its status, headers (names in lower case) and body.
Respond = Callable[[int, list[tuple[bytes, bytes]], bytes], Awaitable[None]]
ReadyBody = Callable[[], bytes | None]  # the whole body if it has arrived (taken, as ``receive`` takes it), else None


class _Outcome:
    """What the request log and the metrics say of a request: filled in as the request goes."""

    __slots__ = ("account", "auth_failure", "client", "status", "username")

    def __init__(self, client: str | None) -> None:
        self.client = client
        self.status: int | None = None
        self.account: str | None = None
        self.auth_failure: AuthFailure | None = None
        self.username: str | None = None

    def line(self, request_id: str, path: str, duration_ms: float | None) -> tuple[object, ...]:
        """The request log's values (``logs.REQUEST_FIELDS``, in order), as ``api.request_id`` makes them."""
        failure, username = self.auth_failure, self.username
        return (
            request_id,
            METHOD,
            path,
            self.status,
            duration_ms,
            self.client,
            self.account,
            None if failure is None else str(failure),
            None if username is None else printable(username, USERNAME_LOG_CHARACTERS),
        )

    def fields(self, request_id: str, path: str) -> dict[str, object]:
        """:meth:`line`'s values by name, without the duration: an error record's ``extra``."""
        fields = dict(zip(REQUEST_FIELDS, self.line(request_id, path, None), strict=True))
        del fields["duration_ms"]
        return fields


class SyncEdge:
    """ASGI: ``POST`` to ``route``'s path answered here, everything else by ``app`` (the general stack)."""

    def __init__(self, app: ASGIApp, *, state: AppState, guard: AbuseGuard, route: Route, access_log: bool) -> None:
        self.app = app
        self.state = state
        self.guard = guard
        self.route = route
        self.path = route.path
        self.raw_path = route.path.encode()  # what the server's plain path matches the request line's target to
        # What api.request_id.route_label makes of a scope the direct route has set its route in.
        self.label = route_label({"route": route})
        self.unmatched = route_label({})  # and of one no route answered (refused by the guard)
        self.access_log = access_log
        self.limit = state.settings.max_numbers_per_request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != METHOD:
            if scope["type"] == "lifespan" and "state" in scope:
                # The server's own plain path for this route (serving.DrainingHttpToolsProtocol) finds
                # the edge here: the lifespan's state is what uvicorn hands every connection.
                scope["state"][LIFESPAN_KEY] = self
            await self.app(scope, receive, send)
            return

        async def respond(status: int, headers: list[tuple[bytes, bytes]], content: bytes) -> None:
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": content})

        await self.serve(scope["headers"], scope["client"][0] if scope.get("client") else None, receive, respond)

    async def serve(
        self,
        raw_headers: list[tuple[bytes, bytes]],
        peer: str | None,
        receive: Receive,
        respond: Respond,
        ready: ReadyBody | None = None,
    ) -> None:
        """The request, from its header list (names in lower case), its peer's address and its body's ``receive``.

        ``respond`` sends the whole response (status, headers, body) at once: two
        ASGI messages from ``__call__``, one write from the server's plain path.
        One implementation of the edge for both, so they cannot drift apart.
        ``ready`` (the plain path's) gives the whole body when it has arrived, as
        ``receive`` would, without its messages; None: it has not, ``receive`` reads it.
        """
        request_id = new_request_id()
        started_at = time.perf_counter()
        REQUEST_ID.set(request_id)  # not reset: see RequestIdMiddleware
        guard = self.guard
        outcome = _Outcome(peer)
        credentialed, key, spent, label = False, "", None, self.unmatched
        try:  # from the first header read on, as the general stack's request id middleware wraps the guard
            headers = GuardHeaders(raw_headers)
            client = guard.proxies.client_address(peer, headers.forwarded_for)
            if client is not None:
                outcome.client = client
            key = limit_key(client)
            credentialed = headers.authorization is not None
            refusal, spent = guard.admit(
                headers, key, time.monotonic(), credentialed=credentialed, rated=True, limit=guard.max_body
            )
            body = BoundedBody(receive, guard.max_body, guard.body_timeout, headers.has_body())
            if refusal is not None:
                status, response_headers, content = _error(refusal)  # the route never ran: "unmatched" in metrics
            else:
                label = self.label  # as the direct route sets the scope's route: the metrics' label
                try:
                    status, response_headers, content = await self._answer(
                        headers, body, request_id, client, outcome, ready
                    )
                except ApiError as exc:
                    status, response_headers, content = _error(exc)
            if not body.complete and not any(name.lower() == b"connection" for name, _ in response_headers):
                # As the guard: answered before the body was read, the connection ends rather than drains.
                response_headers.append(_CONNECTION_CLOSE)
            if not any(name.lower() == b"x-request-id" for name, _ in response_headers):
                response_headers.append((b"x-request-id", request_id.encode()))  # a replay keeps its own
            outcome.status = status
            await respond(status, response_headers, content)
        except Exception:
            log.exception("unhandled error in %s %s", METHOD, self.path, extra=outcome.fields(request_id, self.path))
            if outcome.status is not None:
                raise  # half a response is out: only closing the connection can tell the client
            outcome.status = 500
            await respond(
                500,
                [
                    (b"content-type", _JSON),
                    (b"content-length", str(len(SERVER_ERROR_BODY)).encode()),
                    (b"x-request-id", request_id.encode()),
                ],
                SERVER_ERROR_BODY,
            )
        finally:
            if outcome.status == 401 and credentialed:
                guard.refused_credentials(key, spent)
            self.state.metrics.request_done(label, METHOD, outcome.status, time.perf_counter() - started_at)
            if self.access_log:
                request_line(outcome.line(request_id, self.path, round((time.perf_counter() - started_at) * 1000, 3)))

    async def _answer(
        self,
        headers: GuardHeaders,
        body: BoundedBody,
        request_id: str,
        client: str | None,
        outcome: _Outcome,
        ready: ReadyBody | None = None,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """``api.lookup.lookup``'s work on the values read here: the response's status, headers and body."""
        state = self.state
        username, verdict = await verify_basic(state, headers.authorization, client)
        if isinstance(verdict, AuthFailure):
            outcome.auth_failure = verdict
            outcome.username = username
            raise unauthorized()
        assert username is not None  # an account was found by it
        outcome.account = verdict.name
        check_content_type(headers.content_type or "")
        arrived = ready() if ready is not None else None
        raw = await _read(body) if arrived is None else body.take(arrived)
        numbers = decode_numbers(raw, self.limit)
        answer = await answer_lookup(
            state, username, verdict, raw, numbers, request_id, headers.user_agent, headers.idempotency_keys
        )
        if isinstance(answer, Stored):
            replay = answer.response()  # rare: the general path's own response, so its headers are the same
            return replay.status_code, replay.raw_headers, bytes(replay.body)
        # What Starlette's Response(answer, media_type="application/json") sends.
        return 200, [(b"content-length", str(len(answer)).encode()), (b"content-type", _JSON)], answer


async def _read(body: BoundedBody) -> bytes:
    """The whole body, as Starlette's ``Request.body`` reads it (a disconnect raises ``ClientDisconnect``)."""
    chunks: list[bytes] = []
    while True:
        message: Message = await body.receive()
        kind = message["type"]
        if kind == "http.request":
            chunk = message.get("body", b"")
            if chunk:
                chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)
        elif kind == "http.disconnect":
            raise ClientDisconnect()


def _error(error: ApiError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The wire's error answer, as ``errors.error_response`` renders it."""
    response = error_response(error)
    return response.status_code, list(response.raw_headers), bytes(response.body)
