"""Group commit: the charges of the requests in flight share one transaction.

Committing one transaction per request caps a node at the database's commit
rate (one fsync each on SQLite). The charger queues charges while a commit is
running and commits everything queued in the next transaction, so under load
one fsync pays for many requests and, when idle, a charge goes out at once.

Each charge is still its own conditional UPDATE plus ledger row, applied in
queue order, so the balance can never go below zero and a charge that the
balance does not cover fails alone. A response waits for its charge's commit:
a 200 still means the ledger row is durable. If the transaction fails, every
charge in it fails and nothing of it was written.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine
from starlette.concurrency import run_in_threadpool

from numlookup.billing.ledger import Charge, InsufficientCredits, debit
from numlookup.store.engine import write_transaction

MAX_BATCH = 512


@dataclass(slots=True)
class _Pending:
    account_id: int
    request_id: str
    amount: int
    numbers: int
    within: Callable[[Connection], None] | None
    future: asyncio.Future[Charge] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


@dataclass
class ChargerStats:
    """Commits made and charges in them: their ratio is the mean batch size."""

    commits: int = 0
    charges: int = 0
    batch_sizes: list[int] = field(default_factory=list)


class GroupCharger:
    def __init__(self, engine: Engine, *, enabled: bool = True, on_batch: Callable[[int], None] | None = None) -> None:
        self.engine = engine
        self.enabled = enabled
        self.on_batch = on_batch
        self.stats = ChargerStats()
        self._queue: list[_Pending] = []
        self._worker: asyncio.Task[None] | None = None

    async def charge(
        self,
        account_id: int,
        request_id: str,
        amount: int,
        numbers: int,
        within: Callable[[Connection], None] | None = None,
    ) -> Charge:
        """Debit and write the ledger row; returns once committed (raises InsufficientCredits)."""
        pending = _Pending(account_id, request_id, amount, numbers, within)
        if not self.enabled:
            await run_in_threadpool(self._commit, [pending])
            return await pending.future
        self._queue.append(pending)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._drain())
        return await pending.future

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                await run_in_threadpool(self._commit, batch)
            except Exception as exc:  # the whole transaction is gone: so is every charge in it
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(exc)

    def _commit(self, batch: list[_Pending]) -> None:
        """One transaction for the batch; futures are resolved only after it committed."""
        outcomes: list[Charge | InsufficientCredits] = []
        with write_transaction(self.engine) as conn:
            for p in batch:
                try:
                    outcomes.append(debit(conn, p.account_id, p.request_id, p.amount, p.numbers, p.within))
                except InsufficientCredits as exc:
                    outcomes.append(exc)
        self.stats.commits += 1
        self.stats.charges += len(batch)
        if self.on_batch is not None:
            self.on_batch(len(batch))
        loop = batch[0].future.get_loop()
        for pending, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, InsufficientCredits):
                loop.call_soon_threadsafe(_settle, pending.future, None, outcome)
            else:
                loop.call_soon_threadsafe(_settle, pending.future, outcome, None)


def _settle(future: asyncio.Future[Charge], value: Charge | None, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        assert value is not None
        future.set_result(value)
