"""Load and ledger checks shared by the fault tests: threads posting lookups, and the money audit after."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter

import httpx
from sqlalchemy import Engine, func, select

from numlookup.accounts import NewCredentials, get_account
from numlookup.store.tables import ledger
from tests.support import Server

HEADERS = {"Content-Type": "application/json"}
# Servers under a Load: all of it comes from one address, so the per-IP rate limit
# (150/s per worker) would answer 429s that a fault test is not about.
LOAD_ENV = {"NUMLOOKUP_RATE_LIMIT_PER_IP": "0"}


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
        with httpx.Client(
            base_url=server.url, auth=(self._creds.api_username, self._creds.api_password), timeout=30
        ) as client:
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


def ledger_total(engine: Engine, account_id: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(select(func.sum(ledger.c.amount)).where(ledger.c.account_id == account_id)).scalar_one()
        )


def assert_ledger_matches(engine: Engine, creds: NewCredentials, ok: list[str], *, exact: bool = False) -> None:
    """Every 200 has its ledger row, every row is a whole charge, and the balance is the ledger's sum.

    ``exact``: also every row has its 200, i.e. no client was charged without being told.
    A crash may lose responses to committed charges; a graceful stop or a clean error may not.
    """
    engine.dispose()  # pooled connections may have died with a node or the database
    with engine.connect() as conn:
        rows = conn.execute(select(ledger.c.request_id, ledger.c.amount).where(ledger.c.kind == "lookup")).all()
    charged = {r.request_id for r in rows}
    if exact:
        assert charged == set(ok), (
            f"{len(charged - set(ok))} charges without a 200, {len(set(ok) - charged)} 200s without a charge"
        )
    else:
        assert set(ok) <= charged
    assert all(r.amount == -10_000 for r in rows)
    shared = get_account(engine, creds.name)
    assert shared.balance == ledger_total(engine, shared.id)
