"""The live sources' HTTP: CPU per upstream request, direct (``HttpClients``) against httpx's client.

Why: under bench/live.py's burst the event loop sends 100 upstream requests and
reads their answers in the same few milliseconds as it answers 1,000 clients, so
each request's CPU is latency for all of them. The reference is the same pools
sending through httpx's ``AsyncClient`` (``via_httpx=True``: what every request
went through before, and still does when the environment names a proxy).

Run by hand, never by the test suite::

    python bench/live_http.py [--concurrent 100] [--rounds 10] [--repeat 8]

Prints the median CPU (this process's user+sys; the peer answers from a process
of its own) per request of each path over alternating runs, and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import uvloop

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from live import PeerProcess  # noqa: E402  # bench/live.py's peer in a process of its own

from numlookup.live.http import HttpClients  # noqa: E402  # after sys.path names the checkout


def body(first: int) -> bytes:
    return json.dumps({"numbers": [f"+3725{1000000 + n:07d}" for n in range(first, first + 10)]}).encode()


async def cpu_per_request(url: str, via_httpx: bool, concurrent: int, rounds: int) -> float:
    """Microseconds of CPU per request: ``rounds`` of ``concurrent`` requests at once, connections already open."""
    clients = HttpClients("up", timeout=5, max_connections=128, auth=("u", "p"), via_httpx=via_httpx)

    async def one(i: int) -> bytes:
        return (await clients.send("POST", url, content=body(i), headers={"Content-Type": "application/json"})).content

    try:
        await asyncio.gather(*(one(i) for i in range(concurrent)))  # open the connections
        started = time.process_time()
        for _ in range(rounds):
            await asyncio.gather(*(one(i) for i in range(concurrent)))
        return (time.process_time() - started) / (concurrent * rounds) * 1e6
    finally:
        await clients.close()


async def run(concurrent: int, rounds: int, repeat: int) -> None:
    peer = PeerProcess()
    url = peer.url + "/hlr/sync"
    direct: list[float] = []
    reference: list[float] = []
    try:
        for _ in range(repeat):  # alternating, so the machine's load falls on both alike
            reference.append(await cpu_per_request(url, True, concurrent, rounds))
            direct.append(await cpu_per_request(url, False, concurrent, rounds))
    finally:
        peer.stop()
    for name, figures in (
        ("httpx's client (reference)", reference),
        ("HttpClients, direct (live.connections)", direct),
    ):
        print(
            f"{name}: median {statistics.median(figures):.0f} µs CPU per request "
            f"[{min(figures):.0f}..{max(figures):.0f}], {repeat} runs of {rounds} x {concurrent} concurrent"
        )
    print(f"ratio to the reference: {statistics.median(direct) / statistics.median(reference):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrent", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=8)
    args = parser.parse_args()
    uvloop.run(run(args.concurrent, args.rounds, args.repeat))


if __name__ == "__main__":
    main()
