"""How the provider kinds' HTTP pools use connections, against a real HTTP peer on 127.0.0.1.

``HttpClients`` keeps one connection per pool and hands a request the pool that
most recently finished one: sequential requests reuse one warm connection,
concurrent ones get a connection each, never more than ``max_connections``.
"""

from __future__ import annotations

import asyncio
import json
import threading

import httpx

from numlookup.live.http import HttpClients
from tests.peers.messente import Peer


def body(number: str) -> bytes:
    return json.dumps({"numbers": [number]}).encode()


async def ask(clients: HttpClients, peer: Peer, number: str) -> httpx.Response:
    return await clients.send("POST", peer.url + "/hlr/sync", content=body(number))


def test_sequential_requests_reuse_one_connection() -> None:
    with Peer() as peer:

        async def run() -> list[int]:
            clients = HttpClients("up", timeout=5, max_connections=16, auth=("u", "p"))
            try:
                return [(await ask(clients, peer, f"+3725100000{i}")).status_code for i in range(6)]
            finally:
                await clients.close()

        assert asyncio.run(run()) == [200] * 6
        assert peer.connections == 1
        assert [r["numbers"] for r in peer.requests] == [[f"+3725100000{i}"] for i in range(6)]


def test_concurrent_requests_get_a_connection_each_up_to_the_limit() -> None:
    gate = threading.Event()
    with Peer(gate=gate) as peer:

        async def run() -> tuple[int, int, list[httpx.Response]]:
            clients = HttpClients("up", timeout=30, max_connections=4, auth=("u", "p"))
            try:
                held = [asyncio.ensure_future(ask(clients, peer, f"+3725100000{i}")) for i in range(6)]
                for _ in range(1200):  # until the peer holds as many requests as there are connections
                    if peer.hits >= 4:
                        break
                    await asyncio.sleep(0.05)
                while_held = peer.connections, peer.hits
                gate.set()
                answered = await asyncio.gather(*held)
                return *while_held, answered
            finally:
                gate.set()
                await clients.close()

        connections, hits, answered = asyncio.run(run())
        assert (connections, hits) == (4, 4)  # four requests in flight at once, one connection each
        assert [r.status_code for r in answered] == [200] * 6  # the other two queued behind them
        assert peer.connections == 4
        assert sorted(n for r in peer.requests for n in r["numbers"]) == [f"+3725100000{i}" for i in range(6)]


def test_after_a_burst_a_lone_request_takes_the_connection_used_last() -> None:
    with Peer() as peer:

        async def run() -> None:
            clients = HttpClients("up", timeout=5, max_connections=8, auth=("u", "p"))
            try:
                await asyncio.gather(*(ask(clients, peer, f"+3725100000{i}") for i in range(3)))
                for i in range(5):
                    assert (await ask(clients, peer, f"+3725100001{i}")).status_code == 200
            finally:
                await clients.close()

        asyncio.run(run())
        assert peer.connections == 3  # the burst's three; the lone requests opened none
