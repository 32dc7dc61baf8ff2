"""SIGKILL during load loses no money: every 200 has its ledger row, and balances equal ledgers."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
from sqlalchemy import select

from numlookup.accounts import get_account
from numlookup.store import make_engine, upgrade
from numlookup.store.tables import ledger
from tests.e2e.conftest import Live
from tests.e2e.ledger import LOAD_ENV
from tests.support import Server, database_url

CLIENTS = 8
LOAD_SECONDS = 2.0


def test_sigkill_under_load_loses_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "crash"
    engine = make_engine(database_url(data_dir))
    upgrade(engine)
    server = Server(data_dir, workers=2, env=LOAD_ENV).start()
    live = Live(server=server, engine=engine)
    creds = live.account(credits="100000")
    ok_ids: list[str] = []
    failures: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def load(worker: int) -> None:
        with live.client(creds) as client:
            i = 0
            while not stop.is_set():
                i += 1
                try:
                    response = client.post(
                        "/v1/hlr/sync",
                        json={"numbers": [f"+3725{worker}{i:06d}", f"+3584{worker}{i:07d}"]},
                        headers={"Content-Type": "application/json"},
                    )
                except httpx.TransportError as exc:
                    with lock:
                        failures.append(type(exc).__name__)
                    time.sleep(0.01)
                    continue
                if response.status_code == 200:
                    with lock:
                        ok_ids.append(response.json()["request_id"])

    threads = [threading.Thread(target=load, args=(w,)) for w in range(CLIENTS)]
    try:
        for t in threads:
            t.start()
        time.sleep(LOAD_SECONDS)
        server.kill()
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        assert ok_ids, "no request succeeded before the kill; the test proved nothing"
        assert failures, "the kill interrupted no request; the test proved nothing"

        server = Server(data_dir, workers=2, port=server.port, env=LOAD_ENV).start()
        with engine.connect() as conn:
            rows = conn.execute(select(ledger).order_by(ledger.c.id)).all()
        charged = {r.request_id for r in rows if r.kind == "lookup"}
        assert set(ok_ids) <= charged
        # Every lookup row is a whole charge, and the rows chain into the balance.
        running = 0
        for row in rows:
            if row.kind == "lookup":
                assert row.amount == -20_000 and row.numbers == 2
            running += row.amount
            assert row.balance_after == running
        assert get_account(engine, creds.name).balance == running
        # And the restarted server serves and charges again.
        with live.client(creds) as client:
            response = client.post(
                "/v1/hlr/sync", json={"numbers": ["+37251000001"]}, headers={"Content-Type": "application/json"}
            )
        assert response.status_code == 200
        assert get_account(engine, creds.name).balance == running - 10_000
    finally:
        stop.set()
        server.stop()
        engine.dispose()
