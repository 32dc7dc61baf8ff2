"""``numlookup serve`` (one worker) whose server hands every request to the app through ASGI.

Only ``tests/e2e/test_sync_edge.py`` runs it (``python -m tests.e2e.asgi_edge_server serve ...``), to hold
the bytes the server's plain path writes for ``POST /v1/hlr/sync`` (``serving.PlainCycle``) to those
uvicorn writes for the same edge (``api.sync_edge``) called as an ASGI app. Everything but the protocol's
``plain_requests`` switch is the command's own: the app, settings, logging, the shutdown.
"""

from __future__ import annotations

from numlookup.serving import DrainingHttpToolsProtocol
from tests.e2e.general_server import serve_with


class AsgiOnlyProtocol(DrainingHttpToolsProtocol):
    """The server's protocol with its plain path off."""

    plain_requests = False


def main() -> None:
    serve_with(http="tests.e2e.asgi_edge_server:AsgiOnlyProtocol")


if __name__ == "__main__":
    main()
