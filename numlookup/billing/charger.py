"""Group commit: the charges of the requests in flight share one transaction.

Committing one transaction per request caps a node at the database's commit
rate (one fsync each on SQLite). The charger queues charges while a commit is
running and commits everything queued in the next transaction, so under load
one fsync pays for many requests and, when idle, a charge goes out at once
(after one round of the loop: a batch waits while the loop's ready work keeps
adding charges, ``GroupCharger._gather``).

Each account in a batch is debited with one conditional UPDATE for the sum of
its charges and the ledger rows go in together (``ledger.debit_batch``); where
the balance does not cover the sum, that account's charges are applied one by
one in queue order, so the balance can never go below zero and a charge that
the balance does not cover fails alone. Facts a request commits with its
charge (its fresh live answers) are stored once per batch by ``store_attached``, which
may return a callback run once the transaction has committed (the live layer then
forgets the usage counts it stored).
A response waits for its charge's commit: a 200 still means the ledger row is durable. If the transaction fails, every
charge in it fails and nothing of it was written.

The transaction is the driver's own (``store.engine.driver_transaction``): its
BEGIN, statements and COMMIT go straight to the DB-API connection, and only the
attachments' statements through SQLAlchemy, in the same transaction.

The worker thread commits and returns the batch's outcomes; the event loop then
settles every request's future itself. On a SQLite file a worker under load
sends its batches to its ledger writer process instead (``billing.ledger_writer``),
and the thread keeps the batches with attachments and the time the writer is away.
Waking the loop from the thread once per charge (``call_soon_threadsafe``, a write to the loop's wake-up pipe each) cost
more than the wake-up the thread's return already makes.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import anyio.to_thread
from sqlalchemy import Connection, Engine

from numlookup.billing.ledger import Charge, Counts, InsufficientCredits, debit_batch
from numlookup.billing.ledger_writer import LedgerWriter
from numlookup.loops import ThreadLoop
from numlookup.store.engine import driver_transaction, sqlite_file

MAX_BATCH = 512
# The ledger writer process is started once a worker has committed this many charges: a worker
# under load, for which a process of its own pays. One that serves a request now and then (a
# test's, a demo's) commits in its thread and never starts one.
WRITER_AFTER_CHARGES = 1_000
GATHER_ROUNDS = 8  # rounds of the loop a batch may wait for more charges, while each brings some


@dataclass(slots=True)
class _Pending:
    account_id: int
    request_id: str
    amount: int
    numbers: int
    attached: Sequence[Any]
    counts: Counts | None
    future: asyncio.Future[Charge]


@dataclass(slots=True, eq=False)
class _Commit:
    """One batch handed to the charges thread, and what became of it (read on the loop once ``finished``)."""

    batch: list[_Pending]
    loop: asyncio.AbstractEventLoop
    finished: asyncio.Future[None]  # set on the loop once the thread is done; replaced if its waiter was cancelled
    outcomes: list[Charge | InsufficientCredits] | None = None
    error: BaseException | None = None
    done: bool = False


class _CommitThread:
    """The thread that commits the batches, one at a time, each answered on the loop it came from.

    Why not a one-thread ``ThreadPoolExecutor``: its hop (``run_in_executor``'s
    concurrent future, its lock, the chained asyncio future, and ``asyncio.wait``
    to ride out a cancellation) cost about twice a queue put and one
    ``call_soon_threadsafe`` (``bench/request_core.py``'s thread hop: 145 against
    77 µs of the process's CPU per hop; on uvloop the event loop's share was
    about 47 against 15 µs).
    """

    def __init__(self, commit: Callable[[list[_Pending]], list[Charge | InsufficientCredits]]) -> None:
        self._commit = commit
        self._work: queue.SimpleQueue[_Commit | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="numlookup-charges", daemon=True)
        self._thread.start()

    def submit(self, commit: _Commit) -> None:
        self._work.put(commit)

    def stop(self) -> None:
        """Let the thread end once its queue is empty (the charger is idle when this is called)."""
        self._work.put(None)

    def _run(self) -> None:
        while (commit := self._work.get()) is not None:
            try:
                commit.outcomes = self._commit(commit.batch)
            except BaseException as exc:  # the transaction is gone (rolled back); the loop raises it
                commit.error = exc
            try:
                commit.loop.call_soon_threadsafe(_finish, commit)
            except RuntimeError:  # the loop is closed: nobody waits for these requests any more
                pass


def _finish(commit: _Commit) -> None:
    """On the loop: the thread is done with ``commit``."""
    commit.done = True
    if not commit.finished.done():
        commit.finished.set_result(None)


@dataclass
class ChargerStats:
    """Commits made and charges in them: their ratio is the mean batch size."""

    commits: int = 0
    charges: int = 0
    written: int = 0  # of the commits, those the ledger writer process made
    batch_sizes: list[int] = field(default_factory=list)


class GroupCharger:
    def __init__(
        self,
        engine: Engine,
        *,
        enabled: bool = True,
        on_batch: Callable[[int], None] | None = None,
        store_attached: Callable[[Connection, list[Any]], Callable[[], None] | None] | None = None,
        writer_process: bool = False,
        writer_after: int = WRITER_AFTER_CHARGES,
        sqlite_synchronous: str = "FULL",
    ) -> None:
        """``writer_process``: commit the batches in a ledger writer process (``billing.ledger_writer``),
        started once ``writer_after`` charges were committed in the thread, where the database is a
        SQLite file; elsewhere the setting is ignored. ``sqlite_synchronous``: the engine's own (the
        writer opens its connection with it)."""
        self.engine = engine
        self.writer_after = writer_after
        self.writer = (
            LedgerWriter(engine, sqlite_synchronous) if writer_process and enabled and sqlite_file(engine.url) else None
        )
        self.store_attached = store_attached
        self.enabled = enabled
        self.on_batch = on_batch
        self.stats = ChargerStats()
        self._queue: list[_Pending] = []
        self._worker: asyncio.Task[None] | None = None
        self._thread: _CommitThread | None = None  # the batches' thread, from the first batch on
        self._loop = ThreadLoop()  # the loop the last charge came from, kept

    def charge(
        self,
        account_id: int,
        request_id: str,
        amount: int,
        numbers: int,
        attached: Sequence[Any] = (),
        counts: Counts | None = None,
    ) -> Awaitable[Charge]:
        """Debit and write the ledger row: await it; it returns once committed (raises InsufficientCredits).

        ``attached`` items are handed to ``store_attached`` in the same transaction,
        if this charge succeeds; ``counts`` (the numbers by answer class) go in the ledger row.
        The charge is queued when this is called. With group commit on, what it returns is
        the charge's own future, which the batch settles: the request awaits it directly,
        without a coroutine of its own to create and resume on the way.
        """
        loop = self._loop.get()
        pending = _Pending(account_id, request_id, amount, numbers, attached, counts, loop.create_future())
        if not self.enabled:
            return self._charge_alone(pending)
        self._queue.append(pending)
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._drain())
        return pending.future

    async def _charge_alone(self, pending: _Pending) -> Charge:
        """Group commit off: the charge in a transaction of its own."""
        self._settle([pending], await anyio.to_thread.run_sync(self._commit, [pending]))
        return await pending.future

    async def close(self) -> None:
        """Return once every queued charge is committed or has failed: the shutdown flush.

        A charge whose request was cancelled before its batch started (uvicorn cancels
        the requests left after its graceful-shutdown timeout) is dropped rather than
        committed: no response would ever tell its client it was charged.
        """
        while self._worker is not None and not self._worker.done():
            await asyncio.shield(self._worker)
        if self.writer is not None:
            await self.writer.close()
        if self._thread is not None:
            self._thread.stop()  # idle: every batch is done
            self._thread = None

    async def _drain(self) -> None:
        while self._queue:
            await self._gather()
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            batch = [pending for pending in batch if not pending.future.cancelled()]
            if not batch:
                continue
            try:
                outcomes = await self._committed(batch)
            except Exception as exc:  # the whole transaction is gone: so is every charge in it
                for pending in batch:
                    if not pending.future.done():
                        pending.future.set_exception(exc)
                continue
            self._settle(batch, outcomes)

    async def _committed(self, batch: list[_Pending]) -> list[Charge | InsufficientCredits]:
        """``_commit(batch)`` on the charger's own thread (``_CommitThread``); its outcomes.

        Why a thread of its own rather than anyio's: the batches are committed one
        at a time, and a hop through ``anyio.to_thread`` (its capacity limiter,
        cancel scope and worker hand-off) cost five to seven times this one's
        (``bench/request_core.py``: 416–580 against 77 µs), a commit's whole
        cost for a small batch. A cancelled drain still waits for the transaction
        under way, as ``anyio.to_thread`` did: its rows may be committed, so its
        requests are answered before the cancellation goes on.
        """
        if self._thread is None:
            self._thread = _CommitThread(self._commit)
        loop = self._loop.get()
        commit = _Commit(batch, loop, loop.create_future())
        writer, sent = self.writer, False
        if writer is not None and self.stats.charges >= self.writer_after:
            if not writer.ready(loop):
                writer.ensure_started(loop)  # for this batch if it is up and idle on this loop, else for later ones
            sent = (
                writer.ready(loop)
                and not any(p.attached for p in batch)
                and writer.submit(batch, partial(self._written, commit))
            )
        if not sent:
            self._thread.submit(commit)
        cancelled = False
        while not commit.done:
            try:
                await commit.finished
            except asyncio.CancelledError:  # the wait is cancelled, not the transaction: wait again
                cancelled = True
                commit.finished = loop.create_future()
        if not cancelled:
            if commit.error is not None:
                raise commit.error
            assert commit.outcomes is not None
            return commit.outcomes
        if commit.error is not None:
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(commit.error)
        else:
            assert commit.outcomes is not None
            self._settle(batch, commit.outcomes)
        raise asyncio.CancelledError

    def _written(
        self, commit: _Commit, outcomes: list[Charge | InsufficientCredits] | None, error: BaseException | None
    ) -> None:
        """On the loop: the ledger writer's answer for ``commit``; neither outcomes nor error: nothing was written."""
        if outcomes is None and error is None:  # the writer died before its transaction committed
            assert self._thread is not None
            self._thread.submit(commit)
            return
        if outcomes is not None:
            self.stats.written += 1
        commit.outcomes, commit.error = outcomes, error
        _finish(commit)

    async def _gather(self) -> None:
        """Before a batch starts: let the loop run what is ready, for as long as that adds charges.

        Why: a commit's fixed cost (BEGIN, COMMIT and on SQLite its fsync) is
        paid per batch, and under load the batch started the moment the last
        commit returned, with whatever was queued then; the requests whose work
        was already scheduled on the loop, about to charge, waited for the next
        commit and made it small. A round of the loop is microseconds; a charge
        alone, with nothing else ready, waits one round.
        """
        for _ in range(GATHER_ROUNDS):
            queued = len(self._queue)
            if queued >= MAX_BATCH:
                return
            await asyncio.sleep(0)
            if len(self._queue) == queued:
                return

    def _commit(self, batch: list[_Pending]) -> list[Charge | InsufficientCredits]:
        """One transaction for the batch, in a worker thread; its outcomes, once it committed."""
        with driver_transaction(self.engine) as (conn, cursor):
            outcomes = debit_batch(conn, batch, cursor)  # a _Pending is a Debiting
            attached = [
                item for p, o in zip(batch, outcomes, strict=True) if isinstance(o, Charge) for item in p.attached
            ]
            committed = self.store_attached(conn, attached) if self.store_attached is not None else None
        if committed is not None:
            committed()
        return outcomes

    def _settle(self, batch: list[_Pending], outcomes: list[Charge | InsufficientCredits]) -> None:
        """On the event loop: count the commit and answer each request (one whose client left is skipped)."""
        self.stats.commits += 1
        self.stats.charges += len(batch)
        if self.on_batch is not None:
            self.on_batch(len(batch))
        for pending, outcome in zip(batch, outcomes, strict=True):
            if pending.future.done():
                continue
            if isinstance(outcome, InsufficientCredits):
                pending.future.set_exception(outcome)
            else:
                pending.future.set_result(outcome)
