"""The balance never goes below zero: N concurrent requests against credits for K of them.

Three worker processes share one SQLite file (WAL), and every request has its
own connection, all released at once by a barrier.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from numlookup.accounts import get_account
from numlookup.store.tables import ledger
from tests.e2e.conftest import Live, start_live

N = 60
K = 17


@pytest.fixture
def three_workers(tmp_path: Path) -> Iterator[Live]:
    yield from start_live(tmp_path / "concurrency", workers=3)


def test_exactly_k_of_n_concurrent_requests_succeed(three_workers: Live) -> None:
    live = three_workers
    creds = live.account(credits=f"{K * 2 * 0.01:.2f}")  # each request costs 2 numbers × 0.01
    barrier = threading.Barrier(N)
    statuses: list[int] = []
    request_ids: list[str] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        with live.client(creds) as client:
            client.get("/healthz")  # connect before the barrier, so requests really overlap
            barrier.wait()
            response = client.post(
                "/v1/hlr/sync",
                json={"numbers": [f"+3725{i:07d}", f"+3585{i:08d}"]},
                headers={"Content-Type": "application/json"},
            )
        with lock:
            statuses.append(response.status_code)
            if response.status_code == 200:
                request_ids.append(response.json()["request_id"])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)

    assert Counter(statuses) == {200: K, 402: N - K}
    account = get_account(live.engine, creds.name)
    assert account.balance == 0
    with live.engine.connect() as conn:
        rows = conn.execute(select(ledger).where(ledger.c.account_id == account.id, ledger.c.kind == "lookup")).all()
        total = conn.execute(select(func.sum(ledger.c.amount)).where(ledger.c.account_id == account.id)).scalar_one()
    assert len(rows) == K
    assert sorted(r.request_id for r in rows) == sorted(request_ids)
    assert total == account.balance == 0
    assert sorted(r.balance_after for r in rows) == [i * 20_000 for i in range(K)]


def test_workers_really_are_separate_processes(three_workers: Live) -> None:
    """The test above means something only if the server runs several processes on the file."""
    assert three_workers.server.process is not None
    parent = three_workers.server.process.pid
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            children.append(stat.parent.name)
    # uvicorn's supervisor forks the workers (and, on some versions, a resource tracker).
    assert len(children) >= 3
