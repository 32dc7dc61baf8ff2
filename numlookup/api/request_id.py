"""Gives every request an id before anything else runs, stamps it on every response,
and turns an unexpected error into the wire's clean 500 (code 103).

A pure ASGI middleware, so even a 404 or an unhandled error carries ``X-Request-Id``.
Errors are answered here rather than left to Starlette's outermost handler: that
one re-raises to the server, and uvicorn then closes the connection, so a client
reusing a keep-alive connection would see its next request fail unanswered.
"""

from __future__ import annotations

import logging
import uuid

import msgspec
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from numlookup.api.errors import server_error

log = logging.getLogger("numlookup.api")
_SERVER_ERROR = msgspec.json.encode(server_error().body())


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = request_id
        header = (b"x-request-id", request_id.encode())
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.exception("unhandled error in request %s", request_id)
            if started:
                raise  # half a response is out: only closing the connection can tell the client
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(_SERVER_ERROR)).encode())],
                }
            )
            await send_with_id({"type": "http.response.body", "body": _SERVER_ERROR})
