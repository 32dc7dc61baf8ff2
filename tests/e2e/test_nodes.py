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


def test_sigkill_of_one_node_among_three_loses_nothing(nodes: tuple[list[Server], Engine]) -> None:
    servers, engine = nodes
    creds = account(engine, "100000")
    ok: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()
    counter = itertools.count()

    def load(server: Server) -> None:
        with httpx.Client(base_url=server.url, auth=(creds.api_username, creds.api_password), timeout=30) as client:
            while not stop.is_set():
                n = next(counter)
                try:
                    response = client.post("/v1/hlr/sync", json={"numbers": [f"+3725{n:07d}"]}, headers=HEADERS)
                except httpx.TransportError:
                    time.sleep(0.01)
                    continue
                if response.status_code == 200:
                    with lock:
                        ok.append(response.json()["request_id"])

    threads = [threading.Thread(target=load, args=(servers[i % 3],)) for i in range(9)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    servers[0].kill()
    before_kill = len(ok)
    time.sleep(1.0)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert before_kill > 0 and len(ok) > before_kill, "the surviving nodes must keep serving"
    with engine.connect() as conn:
        rows = conn.execute(select(ledger.c.request_id, ledger.c.amount).where(ledger.c.kind == "lookup")).all()
    charged = {r.request_id for r in rows}
    assert set(ok) <= charged
    assert all(r.amount == -10_000 for r in rows)
    shared = get_account(engine, creds.name)
    assert shared.balance == ledger_total(engine, shared.id)


@pytest.mark.skipif(BACKEND != "postgresql", reason="restarts the PostgreSQL server: the PostgreSQL run only")
def test_postgresql_restart_under_load_is_clean_and_recovers(nodes: tuple[list[Server], Engine]) -> None:
    servers, engine = nodes
    creds = account(engine, "100000")
    outcomes: Counter[str] = Counter()
    ok: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()
    counter = itertools.count()

    def load(server: Server) -> None:
        with httpx.Client(base_url=server.url, auth=(creds.api_username, creds.api_password), timeout=30) as client:
            while not stop.is_set():
                n = next(counter)
                try:
                    response = client.post("/v1/hlr/sync", json={"numbers": [f"+3725{n:07d}"]}, headers=HEADERS)
                except httpx.TransportError as exc:
                    with lock:
                        outcomes[type(exc).__name__] += 1
                    continue
                with lock:
                    if response.status_code == 200:
                        ok.append(response.json()["request_id"])
                        outcomes["200"] += 1
                    else:
                        body = response.json()
                        outcomes[f"{response.status_code}/{body['error']['code']}"] += 1

    threads = [threading.Thread(target=load, args=(servers[i % 3],)) for i in range(6)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    support.cluster().restart()
    restarted = len(ok)
    deadline = time.monotonic() + 20
    while len(ok) < restarted + 30 and time.monotonic() < deadline:
        time.sleep(0.1)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert len(ok) >= restarted + 30, f"the nodes did not recover: {outcomes}"
    assert set(outcomes) <= {"200", "500/103"}, outcomes  # a clean 103 server error, never a dropped connection
    engine.dispose()  # its pooled connections died with the restart
    with engine.connect() as conn:
        charged = {r[0] for r in conn.execute(select(ledger.c.request_id).where(ledger.c.kind == "lookup"))}
    assert set(ok) <= charged
    shared = get_account(engine, creds.name)
    assert shared.balance == ledger_total(engine, shared.id)
