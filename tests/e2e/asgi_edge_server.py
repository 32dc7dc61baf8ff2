"""``numlookup serve`` (one worker) whose server hands every request to the app through ASGI.

Only ``tests/e2e/test_sync_edge.py`` runs it (``python -m tests.e2e.asgi_edge_server serve ...``), to hold
the bytes the server's plain path writes for ``POST /v1/hlr/sync`` (``serving.PlainCycle``) to those
uvicorn writes for the same edge (``api.sync_edge``) called as an ASGI app. Everything but the protocol's
``plain_requests`` switch is the command's own: the app, settings, logging, the shutdown.
"""

from __future__ import annotations

import sys
from typing import Any

from numlookup.serving import DrainingHttpToolsProtocol


class AsgiOnlyProtocol(DrainingHttpToolsProtocol):
    """The server's protocol with its plain path off."""

    plain_requests = False


def main() -> None:
    from numlookup import serving
    from numlookup.cli import main as numlookup

    made = serving.config

    def config(*args: Any, **options: Any) -> Any:
        built = made(*args, **options)
        built.http = "tests.e2e.asgi_edge_server:AsgiOnlyProtocol"  # by name: this file runs as __main__
        return built

    serving.config = config  # the same signature, one field changed
    sys.argv = ["numlookup", *sys.argv[1:]]
    numlookup()


if __name__ == "__main__":
    main()
