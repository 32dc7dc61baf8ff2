"""Live-cache reads of the requests of one event-loop turn share one SELECT.

Why: every request with a routed number reads the cache before asking a
source. One read per request is one hop to a reader thread and one query each;
under a burst of single-number requests those hops were a large share of a
worker's time. Requests hand over their numbers and await their own future; the
first schedules one read for the next loop turn, covering every request that
joined by then.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import Executor
from datetime import UTC, datetime

from numlookup.live.cache import CachedAnswer, LiveCache

# Numbers per SELECT … IN (…): well inside SQLite's and PostgreSQL's parameter limits.
READ_CHUNK = 500

Found = dict[str, CachedAnswer]


class CoalescedReads:
    def __init__(self, cache: LiveCache, executor: Executor) -> None:
        self.cache = cache
        self.executor = executor
        self._waiting: list[tuple[Sequence[str], asyncio.Future[Found]]] = []
        self.reads = 0
        self.requests = 0

    def read(self, numbers: Sequence[str]) -> asyncio.Future[Found]:
        """The cached rows of ``numbers`` (and perhaps of other numbers: look up yours)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Found] = loop.create_future()
        if not self._waiting:
            loop.call_soon(self._flush)
        self._waiting.append((numbers, future))
        return future

    def _flush(self) -> None:
        waiting, self._waiting = self._waiting, []
        self.reads += 1
        self.requests += len(waiting)
        numbers = list(dict.fromkeys(n for batch, _ in waiting for n in batch))
        job = asyncio.get_running_loop().run_in_executor(self.executor, self._read_all, numbers, datetime.now(UTC))

        def settle(done: asyncio.Future[Found]) -> None:
            error = done.exception()
            for _, future in waiting:
                if future.done():  # its request gave up waiting
                    continue
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(done.result())

        job.add_done_callback(settle)

    def _read_all(self, numbers: list[str], now: datetime) -> Found:
        found: Found = {}
        for start in range(0, len(numbers), READ_CHUNK):
            found.update(self.cache.read(numbers[start : start + READ_CHUNK], now))
        return found
