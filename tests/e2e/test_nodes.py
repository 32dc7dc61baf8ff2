"""Three numlookup nodes on three ports sharing one database (PostgreSQL, or one SQLite file).

Money must stay exact across nodes: exactly K of N concurrent requests pass
against a balance for K, and killing one node under load loses nothing.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, func, select

from numlookup.accounts import NewCredentials, create_account, get_account
from numlookup.billing import parse_amount
from numlookup.store import make_engine, upgrade
from numlookup.store.tables import ledger
from tests import support
from tests.support import BACKEND, Server, database_url

N = 60
K = 23
HEADERS = {"Content-Type": "application/json"}


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[list[Server], Engine]]:
    data_dir = tmp_path / "shared"
    engine = make_engine(database_url(data_dir))
    upgrade(engine)
    servers = [Server(data_dir, workers=1) for _ in range(3)]
    try:
        for server in servers:
            server.start()
        yield servers, engine
    finally:
        for server in servers:
            server.stop()
        engine.dispose()


def account(engine: Engine, credits: str) -> NewCredentials:
    return create_account(engine, "shared", credits=parse_amount(credits))


def ledger_total(engine: Engine, account_id: int) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.sum(ledger.c.amount)).where(ledger.c.account_id == account_id)).scalar_one())


def test_exactly_k_of_n_across_three_nodes(nodes: tuple[list[Server], Engine]) -> None:
    servers, engine = nodes
    creds = account(engine, f"{K * 0.01:.2f}")
    barrier = threading.Barrier(N)
    statuses: list[int] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        server = servers[i % 3]
        with httpx.Client(base_url=server.url, auth=(creds.api_username, creds.api_password), timeout=60) as client:
            client.get("/healthz")
            barrier.wait()
            response = client.post("/v1/hlr/sync", json={"numbers": [f"+3725{i:07d}"]}, headers=HEADERS)
        with lock:
            statuses.append(response.status_code)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert Counter(statuses) == {200: K, 402: N - K}
    shared = get_account(engine, creds.name)
    assert shared.balance == 0 == ledger_total(engine, shared.id)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).where(ledger.c.kind == "lookup")).scalar_one() == K


class Load:
    """Threads posting single-number lookups to the nodes until stopped; they record every outcome."""

    def __init__(self, servers: list[Server], creds: NewCredentials, threads: int) -> None:
        self.ok: list[str] = []  # request ids of the 200s
        self.outcomes: Counter[str] = Counter()  # "200", "<status>/<code>", or the transport error's name
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._counter = itertools.count()
        self._creds = creds
        self._threads = [threading.Thread(target=self._run, args=(servers[i % len(servers)],)) for i in range(threads)]
        for t in self._threads:
            t.start()

    def _run(self, server: Server) -> None:
        with httpx.Client(base_url=server.url, auth=(self._creds.api_username, self._creds.api_password), timeout=30) as client:
            while not self._stop.is_set():
                n = next(self._counter)
                try:
                    response = client.post("/v1/hlr/sync", json={"numbers": [f"+3725{n:07d}"]}, headers=HEADERS)
                except httpx.TransportError as exc:
                    with self._lock:
                        self.outcomes[type(exc).__name__] += 1
                    time.sleep(0.01)
                    continue
                with self._lock:
                    if response.status_code == 200:
                        self.ok.append(response.json()["request_id"])
                        self.outcomes["200"] += 1
                    else:
                        self.outcomes[f"{response.status_code}/{response.json()['error']['code']}"] += 1

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=60)


def assert_ledger_matches(engine: Engine, creds: NewCredentials, ok: list[str]) -> None:
    """Every 200 has its ledger row, every row is a whole charge, and the balance is the ledger's sum."""
    engine.dispose()  # pooled connections may have died with a node or the database
    with engine.connect() as conn:
        rows = conn.execute(select(ledger.c.request_id, ledger.c.amount).where(ledger.c.kind == "lookup")).all()
    assert set(ok) <= {r.request_id for r in rows}
    assert all(r.amount == -10_000 for r in rows)
    shared = get_account(engine, creds.name)
    assert shared.balance == ledger_total(engine, shared.id)


def test_sigkill_of_one_node_among_three_loses_nothing(nodes: tuple[list[Server], Engine]) -> None:
    servers, engine = nodes
    creds = account(engine, "100000")
    load = Load(servers, creds, threads=9)
    time.sleep(1.5)
    servers[0].kill()
    before_kill = len(load.ok)
    time.sleep(1.0)
    load.stop()
    assert before_kill > 0 and len(load.ok) > before_kill, "the surviving nodes must keep serving"
    assert_ledger_matches(engine, creds, load.ok)


@pytest.mark.skipif(BACKEND != "postgresql", reason="restarts the PostgreSQL server: the PostgreSQL run only")
def test_postgresql_restart_under_load_is_clean_and_recovers(nodes: tuple[list[Server], Engine]) -> None:
    servers, engine = nodes
    creds = account(engine, "100000")
    load = Load(servers, creds, threads=6)
    time.sleep(1.0)
    support.cluster().restart()
    restarted = len(load.ok)
    deadline = time.monotonic() + 20
    while len(load.ok) < restarted + 30 and time.monotonic() < deadline:
        time.sleep(0.1)
    load.stop()
    assert len(load.ok) >= restarted + 30, f"the nodes did not recover: {load.outcomes}"
    # A clean 103 server error while the database is away, never a dropped connection.
    assert set(load.outcomes) <= {"200", "500/103"}, load.outcomes
    assert_ledger_matches(engine, creds, load.ok)
