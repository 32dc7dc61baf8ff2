"""The console's data from a real server: charges counted by answer class, folded by the server, its workers' beats.

A server with two workers on a real socket: a sync lookup and a job write their
class counts into their ledger rows; the server's own lifespan task folds them
into the rollup (the charts equal the ledger before and after); each worker's
heartbeat row says it is ready and counts the requests it served.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from numlookup import __version__
from numlookup.accounts import get_account
from numlookup.billing import ledger_rows
from numlookup.billing.ledger import Counts
from numlookup.billing.rollup import account_usage, traffic
from numlookup.store.nodes import Node, recent_nodes
from numlookup.store.tables import usage_rollup_state
from tests.e2e.conftest import Live, start_live
from tests.support import wait_for

ENV = {
    "NUMLOOKUP_OFFLINE_PRICE": "0.01",
    "NUMLOOKUP_JOB_CHUNK_NUMBERS": "2",
    "NUMLOOKUP_JOB_POLL_SECONDS": "0.05",
}
# Three distinct valid numbers (one twice, spelt otherwise), two distinct invalid inputs (one twice).
SYNC = ["+37251000001", "+37251000002", "+372 5100 0001", "12345", "+37251000003", "not a number", "12345"]
# Chunks of two, each with a charged number: (…001, 12345), (…002, junk).
JOB = ["+37251000001", "12345", "+37251000002", "not a number"]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    yield from start_live(tmp_path_factory.mktemp("usage"), workers=2, env=ENV)


def watermark(live: Live) -> int:
    with live.engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(usage_rollup_state.c.last_id), 0))).scalar_one())


def test_charges_count_their_classes_and_the_server_folds_them(live: Live) -> None:
    creds = live.account("1")
    account = get_account(live.engine, creds.name)
    with live.client(creds) as client:
        answer = client.post("/v1/hlr/sync", json={"numbers": SYNC})
        assert answer.status_code == 200, answer.text
        job = client.post("/v1/hlr/jobs", json={"numbers": JOB}).json()
        wait_for("the job", lambda: client.get(f"/v1/hlr/jobs/{job['id']}").json()["status"] == "COMPLETED")
    rows = ledger_rows(live.engine, account.id, None)
    [sync] = [r for r in rows if r.kind == "lookup"]
    assert (sync.numbers, sync.counts) == (3, Counts(offline=3, invalid=2))
    chunks = sorted((r.request_id or "", r.counts) for r in rows if r.kind == "job")
    assert chunks == [
        (f"{job['id']}/0", Counts(offline=1, invalid=1)),
        (f"{job['id']}/1", Counts(offline=1, invalid=1)),
    ]
    [credit] = [r for r in rows if r.kind == "credit"]
    assert credit.counts is None

    since = min(r.created_at for r in rows)
    until = datetime.now(UTC) + timedelta(seconds=1)

    def charted() -> tuple[int, int, int, int]:
        with live.engine.connect() as conn:
            buckets = account_usage(conn, account.id, since, until, "hour")
            everyone = traffic(conn, since, until, "day")
        assert sum(b.requests for b in everyone) >= 3
        return (
            sum(b.requests for b in buckets),
            sum(b.offline for b in buckets),
            sum(b.invalid for b in buckets),
            sum(b.credits for b in buckets),
        )

    expected = (3, 5, 4, 50_000)  # the sync request and two chunks; 3 + 1 + 1 offline, 2 + 1 + 1 invalid
    assert charted() == expected  # whether or not a fold ran yet: the tail is counted
    newest = max(r.id for r in rows)
    wait_for("the server's roll-up", lambda: watermark(live) >= newest)
    assert charted() == expected  # folded, counted once


def test_each_worker_beats_ready_and_counts_its_requests(live: Live) -> None:
    wait_for("both workers' rows", lambda: len(recent_nodes_now(live)) == 2)
    nodes = recent_nodes_now(live)
    assert {n.version for n in nodes} == {__version__}
    assert all(n.ready and not n.stale(datetime.now(UTC)) for n in nodes)
    assert len({n.pid for n in nodes}) == 2 and len({n.node_id for n in nodes}) == 2
    before = sum(n.requests for n in nodes)
    with live.client() as client:
        for _ in range(10):
            assert client.get("/healthz").status_code == 200
    wait_for("the requests counted", lambda: sum(n.requests for n in recent_nodes_now(live)) >= before + 10)


def recent_nodes_now(live: Live) -> list[Node]:
    with live.engine.connect() as conn:
        return recent_nodes(conn, datetime.now(UTC) - timedelta(seconds=30))
