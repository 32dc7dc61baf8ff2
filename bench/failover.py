"""What a failover hop costs: a lookup whose first source fails, against one whose first source answers.

Why: a route with several sources (``sources = [...]``) sends a number on when
its source fails; a client waits for the failed attempt and the next one. This
starts one server with three routes to the same answering peer — directly, after
a source that refuses the connection, and after one that answers HTTP 500 — and
times sequential single-number lookups on each (keep-alive, one at a time, so the
figure is latency, not throughput). It prints each route's median and p90, and
the hop's cost as the difference of medians against the direct route, measured
in the same run. A source that times out costs its ``timeout`` instead (not
measured: that is a setting). Run by hand::

    python bench/failover.py [--requests 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from numlookup.accounts import create_account  # noqa: E402  # after sys.path names the checkout
from numlookup.billing import parse_amount  # noqa: E402  # after sys.path names the checkout
from numlookup.store import make_engine, upgrade  # noqa: E402  # after sys.path names the checkout
from tests.live_config import write_config  # noqa: E402  # after sys.path names the checkout
from tests.peers.messente import Peer  # noqa: E402  # after sys.path names the checkout
from tests.support import Server  # noqa: E402  # after sys.path names the checkout

ROUTES = {
    "direct": ("372", "+37251000001", ["good"]),
    "after a refused connection": ("358", "+358401234567", ["dead", "good"]),
    "after an HTTP 500": ("46", "+46701234567", ["err500", "good"]),
}


def _times(client: httpx.Client, number: str, requests: int) -> list[float]:
    seconds = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.post("/v1/hlr/sync", json={"numbers": [number], "max_age": 0})
        seconds.append(time.perf_counter() - started)
        item = response.json()["result"][0]
        assert item["source"] == "upstream:good", item
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="lookups per route")
    args = parser.parse_args()
    peers = {"good": Peer(), "dead": Peer(mode="refuse"), "err500": Peer(mode="http500")}
    for peer in peers.values():
        peer.start()
    with tempfile.TemporaryDirectory(prefix="numlookup-failover-") as tmp:
        folder = Path(tmp)
        config = write_config(
            folder / "numlookup.toml",
            routes=[{"match": f"cc:{cc}", "sources": chain} for cc, _, chain in ROUTES.values()],
            upstreams={name: {"url": p.url, "username": "u", "password": "p"} for name, p in peers.items()},
            # The failing sources must never open their circuit: every lookup pays the hop.
            live_breaker_failures=10**9,
            rate_limit_per_ip=0,
            access_log=False,
        )
        engine = make_engine(f"sqlite:///{folder / 'data' / 'numlookup.db'}", create=True)
        upgrade(engine)
        creds = create_account(engine, "bench", credits=parse_amount("100000"))
        engine.dispose()
        server = Server(folder / "data", env={"NUMLOOKUP_CONFIG": str(config)}).start(timeout=120)
        try:
            auth = (creds.api_username, creds.api_password)
            with httpx.Client(base_url=server.url, auth=auth, timeout=30) as client:
                for _, number, _ in ROUTES.values():  # warm-up: connections, the cache read path
                    _times(client, number, 20)
                figures = {name: _times(client, number, args.requests) for name, (_, number, _) in ROUTES.items()}
        finally:
            server.stop()
            for peer in peers.values():
                peer.stop()
    direct = statistics.median(figures["direct"])
    print(f"{args.requests} sequential single-number lookups per route, one keep-alive connection, max_age 0")
    for name, seconds in figures.items():
        median, p90 = statistics.median(seconds), statistics.quantiles(seconds, n=10)[-1]
        hop = "" if name == "direct" else f"; hop cost {1000 * (median - direct):+.2f} ms against direct"
        print(f"  {name:28} median {1000 * median:6.2f} ms, p90 {1000 * p90:6.2f} ms{hop}")
    print(json.dumps({name: round(1000 * statistics.median(s), 3) for name, s in figures.items()}))


if __name__ == "__main__":
    main()
