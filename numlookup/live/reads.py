"""Live-cache reads of concurrent requests share one SELECT: one read at a time, the next carries all that queued.

Why: every request with a routed number reads the cache before asking a
source. One read per request is one hop to a reader thread and one query each;
under a burst of single-number requests those hops were a large share of a
worker's time. Requests hand over their numbers and await their own future; the
first schedules one read for the next loop turn, covering every request that
joined by then. While a read runs, later requests wait for the next one, which
starts when it ends and covers all of them, as the charges' group commit does.

That also keeps the numbers arriving at the sources' dispatchers in clumps: a
dispatcher sends numbers at once while it has free slots, so numbers that come
one by one leave one by one. Under a burst on a loaded machine the reads of
each loop turn (several at once, on four threads) let the numbers trickle, and
1,000 single-number requests went to the upstream as 270–625 requests instead
of 100 full batches of 10 (bench/live.py under py-spy), each costing the event
loop about a millisecond of HTTP, which slowed the loop further. With one read
at a time the clumps grow with the load; when idle a read starts at the next
loop turn, as before.

On a SQLite file the read runs on the loop itself (``LiveCache.read_here``: a
call into SQLite's C code, no thread hop, see ``live.cache``), so no read is
ever in flight and each loop turn's requests are answered in that turn; the
dispatcher's hold (``live.dispatcher``) keeps their numbers in full batches. A
read SQLite refuses at once, and every other database, go to the thread as above.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from datetime import UTC, datetime

from numlookup.live.cache import CachedAnswer, LiveCache

# Numbers per SELECT … IN (…): well inside SQLite's and PostgreSQL's parameter limits.
READ_CHUNK = 500

Found = dict[str, CachedAnswer]


# A read on the loop's own thread: the rows found, or None when it must run in the executor instead.
HereRead = Callable[[Sequence[str], datetime], Found | None]


class CoalescedReads:
    """``here``: the read to try on the loop first (``LiveCache.read_here``); without it every read is a thread's."""

    def __init__(self, cache: LiveCache, executor: Executor, here: HereRead | None = None) -> None:
        self.cache = cache
        self.executor = executor
        self.here = here
        self._waiting: list[tuple[Sequence[str], asyncio.Future[Found]]] = []
        self._scheduled = False  # a read starts at the next loop turn
        self._running = False  # a read is in its thread; what queues meanwhile goes in the next
        self.reads = 0
        self.requests = 0

    def read(self, numbers: Sequence[str]) -> asyncio.Future[Found]:
        """The cached rows of ``numbers`` (and perhaps of other numbers: look up yours)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Found] = loop.create_future()
        self._waiting.append((numbers, future))
        if not (self._scheduled or self._running):
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._scheduled = False
        waiting, self._waiting = self._waiting, []
        waiting = [(numbers, future) for numbers, future in waiting if not future.done()]  # gave up waiting
        if not waiting:
            return
        self.reads += 1
        self.requests += len(waiting)
        numbers = list(dict.fromkeys(n for batch, _ in waiting for n in batch))
        now = datetime.now(UTC)
        if self.here is not None:
            try:
                here = self._read_all_here(self.here, numbers, now)
            except Exception as exc:  # as a failed read in the thread: these requests fail, the next may not
                for _, future in waiting:
                    future.set_exception(exc)
                return
            if here is not None:
                for _, future in waiting:
                    future.set_result(here)
                return
        try:
            job = asyncio.get_running_loop().run_in_executor(self.executor, self._read_all, numbers, now)
        except Exception as exc:  # the executor is shut down: these requests fail, the next may not
            for _, future in waiting:
                future.set_exception(exc)
            return
        self._running = True

        def settle(done: asyncio.Future[Found]) -> None:
            self._running = False
            error = asyncio.CancelledError() if done.cancelled() else done.exception()
            for _, future in waiting:
                if future.done():  # its request gave up waiting
                    continue
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(done.result())
            if self._waiting:
                self._flush()  # what queued while this read ran

        job.add_done_callback(settle)

    def _read_all(self, numbers: list[str], now: datetime) -> Found:
        found: Found = {}
        for start in range(0, len(numbers), READ_CHUNK):
            found.update(self.cache.read(numbers[start : start + READ_CHUNK], now))
        return found

    @staticmethod
    def _read_all_here(here: HereRead, numbers: list[str], now: datetime) -> Found | None:
        found: Found = {}
        for start in range(0, len(numbers), READ_CHUNK):
            part = here(numbers[start : start + READ_CHUNK], now)
            if part is None:
                return None
            found.update(part)
        return found
