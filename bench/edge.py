"""The event loop's CPU per ``POST /v1/hlr/sync``: the fused edge (``api.sync_edge``) against the general stack.

Why: ``bench/server.py`` measures the whole server under wrk, whose figures on
these shared two-core machines move with every other process; and its requests
per second follow the charges' commits more than the loop's work. This drives
both apps of one process, ``create_app()`` and ``create_app(fused_sync=False)``,
each with its own SQLite database and the server's default settings (request
log on, JSON, to /dev/null; metrics in multiprocess mode; the per-IP limit off),
straight through ASGI: no sockets, no HTTP parser, the same request bytes. It
alternates between them round by round and reports the loop thread's CPU time
per request (``time.thread_time``: the charges' commit thread is not in it) for
each, their medians and spread, and the ratio fused / general::

Then the request log's line, written directly against a record through the
handler (``logs.turn_json_handler``), microseconds per line::

    python bench/edge.py [--rounds 7] [--requests 2000] [--concurrency 32] [--access-log on|off]
                         [--through asgi|protocol]

``--through protocol`` compares instead the server's two ways to the fused edge:
the same request's bytes fed to the server's protocol
(``serving.DrainingHttpToolsProtocol``, on an in-memory transport, one keep-alive
connection per concurrent client, uvicorn's own lifespan and server state), which
answers it on its plain path (``serving.PlainCycle``: no scope, no ASGI messages,
one write), against the same protocol with that path off (uvicorn's
``RequestResponseCycle`` calling the app through ASGI). The ratio is plain / ASGI.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import logging
import logging.config
import os
import statistics
import sys
import tempfile
import time
from collections.abc import MutableMapping
from decimal import Decimal
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
# Before prometheus-client is imported, as ``numlookup serve`` sets it: the metrics as a server writes them.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="bench-edge-metrics-"))

import uvloop  # noqa: E402  # the loop serve runs on
from uvicorn.lifespan.on import LifespanOn  # noqa: E402
from uvicorn.server import ServerState  # noqa: E402

from numlookup import serving  # noqa: E402
from numlookup.accounts import create_account  # noqa: E402
from numlookup.api import request_id  # noqa: E402
from numlookup.api.app import create_app  # noqa: E402
from numlookup.billing import parse_amount  # noqa: E402
from numlookup.logs import logging_config  # noqa: E402
from numlookup.settings import Settings  # noqa: E402
from numlookup.store import make_engine, upgrade  # noqa: E402

NUMBERS = [line.split('"')[1] for line in (HERE / "wrk_lookup.lua").read_text().splitlines() if line.startswith('  "+')]
BODY = json.dumps({"numbers": NUMBERS}).encode()


class Variant:
    """One app, its lifespan running, and the Authorization header of its account."""

    def __init__(self, name: str, fused: bool, access_log: bool) -> None:
        self.name = name
        folder = Path(tempfile.mkdtemp(prefix=f"bench-edge-{name}-"))
        settings = Settings(
            data_dir=str(folder),
            access_log=access_log,
            rate_limit_per_ip=0,
            max_numbers_per_request=len(NUMBERS),
            default_price=Decimal("0.01"),
        )
        engine = make_engine(f"sqlite:///{folder / 'numlookup.db'}")
        upgrade(engine)
        creds = create_account(engine, "bench", credits=parse_amount("100000000"))
        engine.dispose()
        token = base64.b64encode(f"{creds.api_username}:{creds.api_password}".encode())
        self.headers = [
            (b"host", b"bench"),
            (b"authorization", b"Basic " + token),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
            (b"user-agent", b"wrk"),
        ]
        self.app = create_app(settings, fused_sync=fused)
        self.cpu: list[float] = []

    async def one(self) -> None:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/hlr/sync",
            "raw_path": b"/v1/hlr/sync",
            "query_string": b"",
            "root_path": "",
            "headers": self.headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8080),
            "state": {},
        }
        sent: list[MutableMapping[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": BODY, "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        await self.app(scope, receive, send)
        if sent[0]["status"] != 200:
            raise SystemExit(f"{self.name}: HTTP {sent[0]['status']}: {sent[1]['body'][:300]!r}")

    async def run(self, requests: int, concurrency: int) -> float:
        """Loop-thread CPU seconds per request, over ``requests`` requests, ``concurrency`` at a time."""
        left = requests

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await self.one()

        start = time.thread_time()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return (time.thread_time() - start) / requests


class _AsgiOnlyProtocol(serving.DrainingHttpToolsProtocol):
    plain_requests = False


class _Transport:
    """What uvicorn's protocol asks of a transport, in memory: each write answers the request waiting on it."""

    def __init__(self) -> None:
        self.waiter: asyncio.Future[bytes] | None = None
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def write(self, data: bytes) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class ProtocolVariant(Variant):
    """The fused app behind the server's protocol: its plain path, or (``plain=False``) uvicorn's ASGI cycle."""

    def __init__(self, name: str, plain: bool, access_log: bool) -> None:
        super().__init__(name, True, access_log)
        self.protocol = serving.DrainingHttpToolsProtocol if plain else _AsgiOnlyProtocol
        head = b"POST /v1/hlr/sync HTTP/1.1\r\n" + b"".join(
            name + b": " + value + b"\r\n" for name, value in self.headers
        )
        self.request = head + b"\r\n" + BODY
        self.config = serving.config(Settings(), host="127.0.0.1", port=8080, workers=1)
        self.config.app, self.config.factory, self.config.log_config = self.app, False, None
        self.config.load()
        self.lifespan = LifespanOn(self.config)  # as the server runs it: the app's state for its connections
        self.server_state = ServerState()
        self.server_state.default_headers = [(b"date", b"Wed, 02 Dec 2026 00:00:00 GMT"), *self.config.encoded_headers]

    async def run(self, requests: int, concurrency: int) -> float:
        left = requests

        async def client() -> None:
            nonlocal left
            loop = asyncio.get_running_loop()
            protocol = self.protocol(self.config, self.server_state, self.lifespan.state, loop)
            transport = _Transport()
            protocol.connection_made(transport)  # type: ignore[arg-type]  # the part of a transport it uses
            while left > 0:
                left -= 1
                transport.waiter = loop.create_future()
                protocol.data_received(self.request)
                response = await transport.waiter
                if not response.startswith(b"HTTP/1.1 200 "):
                    raise SystemExit(f"{self.name}: {response[:300]!r}")
            protocol.connection_lost(None)

        start = time.thread_time()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        return (time.thread_time() - start) / requests


async def measure(args: argparse.Namespace) -> None:
    access_log = args.access_log == "on"
    if args.through == "protocol":
        variants: list[Variant] = [
            ProtocolVariant("plain", True, access_log),
            ProtocolVariant("asgi", False, access_log),
        ]
        _quiet()  # the configs set up uvicorn's logging again
        async with contextlib.AsyncExitStack() as stack:
            for variant in variants:
                assert isinstance(variant, ProtocolVariant)
                await variant.lifespan.startup()
                stack.push_async_callback(variant.lifespan.shutdown)
            await _rounds(variants, args)
        return
    variants = [Variant("fused", True, access_log), Variant("general", False, access_log)]
    async with variants[0].app.router.lifespan_context(variants[0].app):
        async with variants[1].app.router.lifespan_context(variants[1].app):
            await _rounds(variants, args)


async def _rounds(variants: list[Variant], args: argparse.Namespace) -> None:
    for variant in variants:
        await variant.run(200, args.concurrency)  # warm: caches, the account cache, the first commits
    for round_ in range(args.rounds):
        order = variants if round_ % 2 == 0 else variants[::-1]
        for variant in order:
            variant.cpu.append(await variant.run(args.requests, args.concurrency))
        print(
            f"round {round_ + 1}: "
            + ", ".join(f"{v.name} {v.cpu[-1] * 1e3:.3f} ms" for v in variants)
            + f"  (load {os.getloadavg()[0]:.2f})",
            flush=True,
        )
    first, second = (statistics.median(v.cpu) for v in variants)
    for variant in variants:
        cpu = [c * 1e3 for c in variant.cpu]
        spread = f"[{min(cpu):.3f}-{max(cpu):.3f}]"
        print(f"{variant.name}: loop CPU per request median {statistics.median(cpu):.3f} ms {spread}")
    ratios = [f / g for f, g in zip(variants[0].cpu, variants[1].cpu, strict=True)]
    names = f"{variants[0].name} / {variants[1].name}"
    print(f"{names}: {first / second:.3f} (per round: {min(ratios):.3f}-{max(ratios):.3f})")
    print(f"{names}: {(first - second) * 1e6:+.1f} µs per request (medians)")


def _quiet() -> None:
    """The log's handlers to /dev/null (the request log is on: its lines are part of the work measured)."""
    devnull = open(os.devnull, "w")  # the log's stream for the whole run
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(devnull)


def log_lines(lines: int, rounds: int) -> None:
    """The request log's line written directly (``logs.json_line``) against a ``LogRecord`` through the handler."""
    fields: dict[str, object] = {
        "request_id": "0c4a7b3e-8f9d-4f51-9a43-3b5e4c1f0a11",
        "method": "POST",
        "path": "/v1/hlr/sync",
        "status": 200,
        "client": "127.0.0.1",
        "account": "bench",
        "auth_failure": None,
        "username": None,
        "duration_ms": 3.217,
    }

    def write(direct: bool) -> float:
        names = vars(request_id)  # the module's own names, as write_request_line looks them up
        found = names["turn_json_handler"]
        if not direct:
            names["turn_json_handler"] = lambda _logger: None
        try:
            start = time.thread_time()
            for _ in range(lines):
                request_id.write_request_line(dict(fields))
            logging.getLogger().handlers[0].flush()
            return (time.thread_time() - start) / lines
        finally:
            names["turn_json_handler"] = found

    direct: list[float] = []
    record: list[float] = []
    for round_ in range(rounds):
        for kind in ("direct", "record") if round_ % 2 == 0 else ("record", "direct"):
            (direct if kind == "direct" else record).append(write(kind == "direct"))
    d, r = statistics.median(direct) * 1e6, statistics.median(record) * 1e6
    print(f"request log line: direct {d:.2f} us [{min(direct) * 1e6:.2f}-{max(direct) * 1e6:.2f}],", end=" ")
    print(f"record {r:.2f} us [{min(record) * 1e6:.2f}-{max(record) * 1e6:.2f}], direct / record {d / r:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=2000, help="requests per app per round")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--access-log", choices=("on", "off"), default="on")
    parser.add_argument("--through", choices=("asgi", "protocol"), default="asgi")
    args = parser.parse_args()
    logging.config.dictConfig(logging_config("json", "info"))
    _quiet()
    uvloop.run(measure(args))
    log_lines(20_000, args.rounds)


if __name__ == "__main__":
    main()
