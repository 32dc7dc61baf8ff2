"""Accounts kept in each worker's memory, so a request is authenticated without a database round trip.

Why: reading an account costs two SELECTs and a hop to a worker thread, and
under a burst of small requests that was most of a worker's time (py-spy: about
two thirds of the busy time of a worker answering 1,000 concurrent
single-number requests). Accounts change rarely, so each worker keeps what it
read, tagged with the account change counter (``store.account_epoch``) it saw first,
and a background task polls that counter every ``refresh_seconds``. When it
moved, every entry is dropped. A change made by the CLI or by any node (an
account disabled, a secret rotated, an allow-list edited, credits added)
therefore reaches every worker within ``refresh_seconds``.

If the counter cannot be read for three intervals (the database is gone), the
entries are not trusted and requests read the database as if there were no
cache, failing as they would without it.

The balance in an entry (and what bulk jobs hold of it) is only used to refuse,
before any live source is paid for, a request the account clearly cannot pay;
``api.lookup`` reads both afresh before it refuses. The charge itself is the
authoritative check (a conditional UPDATE), and each charge made through this
worker writes its outcome back into the entry. Charges made elsewhere may leave
the entry high until the next change of the counter: at most one live lookup per
worker is asked for an account whose credit ran out elsewhere, and its charge
then fails with 104 as it must.
"""

from __future__ import annotations

import asyncio
import logging
import time

import anyio.to_thread
from sqlalchemy import Engine

from numlookup.accounts.service import Account, AuthFailure, StoredAccount, load_account, verify
from numlookup.store import account_epoch

log = logging.getLogger("numlookup.accounts")
# Entries trusted while the counter was read within this many intervals.
TRUST_INTERVALS = 3
# Beyond this many distinct usernames the cache starts again: a bound on memory, not an eviction policy.
MAX_ENTRIES = 100_000


class AccountCache:
    def __init__(self, engine: Engine, refresh_seconds: float) -> None:
        self.engine = engine
        self.refresh_seconds = refresh_seconds
        self._entries: dict[str, StoredAccount] = {}
        # The balances charges found since each entry was built, by username: the next hit applies them.
        self._noted: dict[str, tuple[int, int]] = {}
        self._epoch: int | None = None  # the counter the entries were read under
        self._read_at = float("-inf")  # monotonic time of the last successful read of the counter
        self._loading: dict[str, asyncio.Future[tuple[int | None, StoredAccount | None]]] = {}
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.refresh_seconds > 0

    def _trusted(self) -> bool:
        return self._epoch is not None and time.monotonic() - self._read_at <= TRUST_INTERVALS * self.refresh_seconds

    async def authenticate(self, username: str, password: str, client_ip: str | None) -> Account | AuthFailure:
        """The account if the credentials are right, it is enabled and ``client_ip`` is allowed; else why not."""
        known = self.known(username, password, client_ip)
        if known is not None:
            return known
        return await self.read(username, password, client_ip)

    async def read(self, username: str, password: str, client_ip: str | None) -> Account | AuthFailure:
        """:meth:`authenticate`'s answer from the database, for a caller :meth:`known` has just answered None."""
        self.misses += 1
        seen, stored = await self._load_once(username)
        if stored is not None and seen is not None:
            self._keep(seen, username, stored)
        return verify(stored, password, client_ip)

    def known(self, username: str, password: str, client_ip: str | None) -> Account | AuthFailure | None:
        """:meth:`authenticate`'s answer from a trusted entry, without awaiting; None: there is none, await it.

        Why: nearly every request's account is kept, and the sync edge's request
        answered from here needs no coroutine of its own for its credentials.
        """
        if self.enabled and self._trusted() and (stored := self.entry(username)) is not None:
            self.hits += 1
            return verify(stored, password, client_ip)
        return None

    async def _load_once(self, username: str) -> tuple[int | None, StoredAccount | None]:
        """One database read per username at a time: a burst on a cold cache shares the first."""
        loading = self._loading.get(username)
        if loading is not None:
            return await asyncio.shield(loading)
        loading = self._loading[username] = asyncio.get_running_loop().create_future()
        try:
            result = await anyio.to_thread.run_sync(self._load, username)
        except BaseException as exc:
            loading.set_exception(exc)
            loading.exception()  # retrieved: waiters re-raise it, and nobody else need
            raise
        else:
            loading.set_result(result)
            return result
        finally:
            del self._loading[username]

    def _load(self, username: str) -> tuple[int | None, StoredAccount | None]:
        with self.engine.connect() as conn:
            # The counter first: the account read after it can only be as new or newer than its tag.
            seen = account_epoch.current(conn) if self.enabled else None
            return seen, load_account(conn, username)

    def _keep(self, seen: int, username: str, stored: StoredAccount) -> None:
        if seen != self._epoch:
            if self._epoch is not None and seen < self._epoch:
                return  # read before a change this worker already knows of
            self._adopt(seen)
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
            self._noted.clear()
        self._entries[username] = stored
        self._noted.pop(username, None)  # the database's balance, read after any noted here was committed

    def _adopt(self, seen: int) -> None:
        if seen != self._epoch:
            self._entries.clear()
            self._noted.clear()
            self._epoch = seen
        self._read_at = time.monotonic()

    def note_balance(self, username: str, balance: int, reserved: int) -> None:
        """The balance (and what jobs hold of it) a charge through this worker found: after it, or not covering it.

        Kept aside and built into the entry when it is next read (:meth:`entry`, through which
        :meth:`known` reads), not here. Why: every charge notes one, and a group commit settles
        some thirty charges at once; rebuilding the entry (two frozen dataclasses, ten fields) for
        each was 3 % of the sync edge's loop CPU (bench/edge.py's py-spy), where the next request
        of the account needs only the last balance.
        """
        if username in self._entries:
            self._noted[username] = (balance, reserved)

    def entry(self, username: str) -> StoredAccount | None:
        """The kept entry of ``username``, with the last balance noted for it; None if none is kept."""
        stored = self._entries.get(username)
        if stored is not None and self._noted:
            stored = self._with_noted(username, stored)
        return stored

    def _with_noted(self, username: str, stored: StoredAccount) -> StoredAccount:
        noted = self._noted.pop(username, None)
        if noted is None:
            return stored
        account = stored.account.with_balance(*noted)
        stored = self._entries[username] = StoredAccount(
            account, stored.secret_salt, stored.secret_hash, stored.networks, stored.allowed
        )
        return stored

    async def refresh(self) -> None:
        """Read the counter once; drop every entry if it moved."""
        seen = await anyio.to_thread.run_sync(self._read_epoch)
        self._adopt(seen)

    def _read_epoch(self) -> int:
        with self.engine.connect() as conn:
            return account_epoch.current(conn)

    async def follow(self) -> None:
        """Poll the counter for as long as the worker runs (a task of the app's lifespan)."""
        if not self.enabled:
            return
        failing = False
        while True:
            await asyncio.sleep(self.refresh_seconds)
            try:
                await self.refresh()
            except Exception as exc:  # the database is away: entries age out of trust by themselves
                if not failing:
                    log.warning("cannot read the account change counter: %s", exc)
                failing = True
                continue
            if failing:
                log.info("the account change counter is readable again")
            failing = False
