"""The admin API under ``/admin/v1/``: accounts, credits, the ledger and dataset imports, for operators' scripts.

A module per resource (``accounts``, ``credits``, ``datasets``), the bodies in
``wire``, the document's part in ``openapi``. Every route first checks the bearer
token (``token``), then calls the functions the CLI calls (``calls``), so the two
cannot disagree. One ``Route`` per path, its methods told apart inside, so a
405 names every method the path has.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

Endpoint = Callable[[Request], Awaitable[Response]]
PREFIX = "/admin/v1"


def _by_method(**handlers: str) -> Endpoint:
    """One endpoint for a path's methods, each handler named ``"module.function"`` of this package.

    A handler's module is imported at the first request that needs it, not at the
    server's start: most servers never get an admin request, and importing the
    admin modules (the importer's among them) was part of every worker's start.
    """
    loaded: dict[str, Endpoint] = {}

    async def endpoint(request: Request) -> Response:
        # Starlette answers HEAD on a GET route: the GET handler serves it.
        method = "GET" if request.method == "HEAD" else request.method
        handler = loaded.get(method)
        if handler is None:
            module, _, name = handlers[method].partition(".")
            handler = loaded[method] = getattr(importlib.import_module(f"{__name__}.{module}"), name)
        return await handler(request)

    return endpoint


def _route(path: str, **handlers: str) -> Route:
    return Route(f"{PREFIX}{path}", _by_method(**handlers), methods=list(handlers))


ROUTES = [
    _route("/accounts", GET="accounts.list_accounts", POST="accounts.create_account"),
    _route("/accounts/{name}", GET="accounts.show_account"),
    _route("/accounts/{name}/disable", POST="accounts.disable_account"),
    _route("/accounts/{name}/enable", POST="accounts.enable_account"),
    _route("/accounts/{name}/price", PUT="accounts.set_price"),
    _route("/accounts/{name}/status-style", PUT="accounts.set_status_style"),
    _route("/accounts/{name}/allowed-networks", POST="accounts.allow_network", DELETE="accounts.deny_network"),
    _route("/accounts/{name}/rotate-secret", POST="accounts.rotate_secret"),
    _route("/accounts/{name}/credits", POST="credits.top_up"),
    _route("/accounts/{name}/adjustments", POST="credits.adjust"),
    _route("/accounts/{name}/ledger", GET="credits.ledger"),
    _route("/datasets/{kind}", POST="datasets.import_dataset_route"),
]
