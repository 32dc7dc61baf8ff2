"""The lookup route called straight from the edge of the app, past Starlette's router.

Why: ``POST /v1/hlr/sync`` is nearly every request a node serves, and under load
a tenth of a worker's time went to the layers between the abuse guard and the
route: Starlette's exception middleware, its router matching each route's
pattern in turn, and the per-route wrapper that catches exceptions a second time.
Every one of them also wraps ``send`` and is resumed each time the request
awaits. Here one exact comparison of method and path picks the route, and its
``ApiError`` is rendered where it is raised, as the app's handler would.

Everything else (other routes, other methods on this path: 405, unknown paths:
404) goes on to the router as before. The scope gets the ``route`` the router
would have set, so metrics label the request by the same route template.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from numlookup.api.errors import ApiError, error_response

Endpoint = Callable[[Request], Awaitable[Response]]


class DirectRoute:
    """ASGI middleware: requests for ``route`` (its one method) go to its endpoint, the rest to ``app``."""

    def __init__(self, app: ASGIApp, route: Route) -> None:
        self.app = app
        self.route = route
        self.path = route.path
        methods = (route.methods or set()) - {"HEAD"}
        if len(methods) != 1:
            raise ValueError(f"a direct route answers one method, not {sorted(methods)}")
        [self.method] = methods
        endpoint: Endpoint = route.endpoint
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != self.method:
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route
        scope["endpoint"] = self.endpoint
        try:
            response = await self.endpoint(Request(scope, receive, send))
        except ApiError as exc:
            response = error_response(exc)
        await response(scope, receive, send)
