"""Three numlookup nodes on three ports sharing one database (PostgreSQL, or one SQLite file).

Money must stay exact across nodes: exactly K of N concurrent requests pass
against a balance for K, and killing one node under load loses nothing.
"""

from __future__ import annotations

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
from tests.e2e.ledger import HEADERS, LOAD_ENV, Load, assert_ledger_matches, ledger_total
from tests.support import BACKEND, Server, database_url

N = 60
K = 23


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[tuple[list[Server], Engine]]:
    data_dir = tmp_path / "shared"
    engine = make_engine(database_url(data_dir))
    upgrade(engine)
    servers = [Server(data_dir, workers=1, env=LOAD_ENV) for _ in range(3)]
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
