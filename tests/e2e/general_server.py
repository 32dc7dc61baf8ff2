"""``numlookup serve`` (one worker) whose app answers ``POST /v1/hlr/sync`` through the general stack.

Only ``tests/e2e/test_sync_edge.py`` runs it (``python -m tests.e2e.general_server serve ...``), to hold
the fused edge (``api.sync_edge``) to what the layers it replaces answer. Everything but the app's factory
is the command's own: settings, logging, the protocol, the shutdown.
"""

from __future__ import annotations

import sys
from typing import Any

from starlette.applications import Starlette


def create_general_app() -> Starlette:
    # Imported here, in the worker: prometheus-client must be imported after serve has set its folder.
    from numlookup.api.app import create_app

    return create_app(fused_sync=False)


def serve_with(**fields: str) -> None:
    """``numlookup`` from this process's command line, with the given fields of the server's uvicorn config replaced.

    Each field's value names what it sets by module (``tests.e2e.x:name``), as the
    command's own config does: the file that calls this runs as ``__main__``.
    """
    from numlookup import serving
    from numlookup.cli import main as numlookup

    made = serving.config

    def config(*args: Any, **options: Any) -> Any:
        built = made(*args, **options)
        for name, value in fields.items():
            setattr(built, name, value)
        return built

    serving.config = config  # the same signature, the named fields changed
    sys.argv = ["numlookup", *sys.argv[1:]]
    numlookup()


def main() -> None:
    serve_with(app="tests.e2e.general_server:create_general_app")


if __name__ == "__main__":
    main()
