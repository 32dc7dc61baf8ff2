"""One dispatcher per live source: bounded concurrency, adaptive batching, single flight, breaker.

A number asked while the same number is already in flight joins that query.
A source that answered HTTP 429 gets nothing until its ``Retry-After`` has
passed (its numbers fail at once meanwhile, so a route's next source takes
them); that is back-off, not failure, so it does not count towards the breaker.
Numbers go out at once while fewer than ``max_concurrency`` source requests are
in flight; beyond that they wait in a queue and the next free slot takes up to
``max_batch`` of them, so batches grow with load instead of adding a batching
delay when idle. A busy source (``hold_after`` requests or more in flight) gets
full batches only: a part batch waits until the queue fills one, a slot frees
below ``hold_after``, or the oldest waiting number has waited its hold,
whichever comes first. The hold is ``hold_seconds`` (``HOLD_SECONDS``) or an
eighth of the source's recent latency, whichever is longer (waiting a few per
cent of a slow source's time buys a full batch; a fast source's batches fill in
its first milliseconds anyway), and it is timed from when the dispatcher first
held the number at the head of the queue: once a full batch has taken the
numbers a hold was set for, the next part batch waits its own hold, not the rest
of theirs. (Timed from each number's submission instead, the time a loaded
loop took to reach the dispatcher would count as holding.)

Why: when a burst's numbers reach the dispatcher one by one (the event loop slowed down,
as by a loaded machine or by py-spy's sampling), every free slot took a single number:
bench/live.py's 1,000 single-number requests went to the upstream as 270 to 625 requests
instead of about 100, each about a millisecond of the event loop's HTTP work, which
slowed the loop further.
While the circuit is open, queued and new numbers fail at once.
Futures always get a result (never an exception): an ``Outcome`` saying what
the source answered, or why it failed.

Bulk jobs submit their numbers ``background``: they wait in a lane of their own,
which gets a free slot only when no sync number is waiting, and at most
``background_limit`` of the source requests in flight carry them. So a running
job never holds more than its share of a source, and sync requests never queue
behind it: a sync request for a number a job has queued takes it to the front.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from numlookup.live.breaker import CircuitBreaker, CircuitState
from numlookup.live.source import LiveAnswer, LiveSource, SourceError
from numlookup.live.usage import Pricing, UsageCounter
from numlookup.metrics import Metrics

log = logging.getLogger("numlookup.live")

# The least a number waits for its batch to fill while its source is busy (see the module's doc):
# under a burst a batch of 10 fills in a few milliseconds; when it does not, this is all it costs.
HOLD_SECONDS = 0.02
# Of a source's recent latency, the share a number may wait for its batch to fill (when longer than the above).
HOLD_SHARE = 1 / 8
# Weight of the newest request in the recent latency (an exponential moving average).
LATENCY_WEIGHT = 0.2

Queued = tuple[str, float | None]  # a number and its max_age


@dataclass(frozen=True, slots=True)
class Outcome:
    """``failure`` is set when the source as a whole failed (or was not asked): then ``answer`` is None."""

    answer: LiveAnswer | None
    failure: str | None = None


class Dispatcher:
    def __init__(
        self,
        source: LiveSource,
        breaker: CircuitBreaker,
        metrics: Metrics,
        *,
        max_concurrency: int,
        guard_seconds: float,
        usage: UsageCounter | None = None,
        clock: Callable[[], float] = time.monotonic,
        background_limit: int | None = None,
        hold_seconds: float = HOLD_SECONDS,
    ) -> None:
        self.source = source
        self.name = source.name
        self.breaker = breaker
        self.metrics = metrics
        self.max_concurrency = max_concurrency
        self.guard_seconds = guard_seconds  # an upper bound even if the source ignores its own timeout
        self.usage = usage
        self._clock = clock
        self._quiet_until = 0.0  # the source asked us (HTTP 429) to send nothing before this time
        self._inflight: dict[str, asyncio.Future[Outcome]] = {}
        self._queue: deque[Queued] = deque()
        # The number at the head of the queue when its part batch was first held, and the loop time it was.
        self._held: tuple[str, float] | None = None
        self._running = 0
        self.background_limit = max(1, min(background_limit or max_concurrency, max_concurrency))
        self._background: deque[Queued] = deque()
        self._background_waiting: set[str] = set()  # queued in the background lane, not yet sent or promoted
        self._background_running = 0
        self._kick_scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        # Requests in flight from which on a part batch waits for more numbers: an eighth of the slots.
        self.hold_after = max(1, max_concurrency // 8)
        self.hold_seconds = hold_seconds
        self.latency: float | None = None  # recent latency of the source's successful requests, seconds
        self._hold: asyncio.TimerHandle | None = None  # when the part batch waiting now goes anyway

    def submit(self, number: str, max_age: float | None = None, *, background: bool = False) -> asyncio.Future[Outcome]:
        joined = self._inflight.get(number)
        if joined is not None:
            if not background and number in self._background_waiting:
                self._background_waiting.discard(number)  # a sync request wants it: to the front
                self._queue.append((number, max_age))
                self._schedule()
            return joined
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Outcome] = loop.create_future()
        self._inflight[number] = future
        if background:
            self._background.append((number, max_age))
            self._background_waiting.add(number)
        else:
            self._queue.append((number, max_age))
        self._schedule()
        return future

    def hold_for(self) -> float:
        """How long a number may wait for a full batch while the source is busy (see the module's doc)."""
        if self.latency is None:
            return self.hold_seconds
        return max(self.hold_seconds, self.latency * HOLD_SHARE)

    def _schedule(self) -> None:
        if not self._kick_scheduled:  # numbers submitted in the same loop turn share a batch
            self._kick_scheduled = True
            asyncio.get_running_loop().call_soon(self._kick)

    def _kick(self, *, part: bool = False) -> None:
        """Send what is queued while slots are free; ``part``: a part batch goes even though the source is busy."""
        self._kick_scheduled = False
        try:
            self._send(part)
        finally:
            if self._hold is not None and not self._queue:  # nothing left to hold for: the timer must not fire
                self._hold.cancel()
                self._hold = None

    def _send(self, part: bool) -> None:
        while self._running < self.max_concurrency:
            background = not self._queue
            if background and not (self._background_waiting and self._background_running < self.background_limit):
                return
            wait = self._quiet_until - self._clock()
            if wait > 0:
                self._reject_queue(f"{self.name} asked us to slow down (retry after {wait:.0f} s)", "backoff")
                return
            if self.breaker.state is CircuitState.OPEN:
                self._reject_queue(f"{self.name} is unavailable (circuit open after repeated failures)", "rejected")
                return
            if not (background or part) and len(self._queue) < self.source.max_batch:
                if self._running >= self.hold_after and self._hold_until_due():  # busy: wait for a full batch
                    return
            if not self.breaker.allow():  # half-open, its one probe out: after the hold, which sends nothing
                self._reject_queue(f"{self.name} is unavailable (circuit open after repeated failures)", "rejected")
                return
            batch = self._take_background() if background else self._take()
            if not batch:
                return
            self._running += 1
            self._background_running += background
            task = asyncio.create_task(self._run(batch, background))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _hold_until_due(self) -> bool:
        """Hold the part batch until its head number's hold ends (a timer then sends it); False if it has ended.

        A timer set for numbers a full batch has taken since is moved to the
        oldest number still waiting.
        """
        loop = asyncio.get_running_loop()
        head = self._queue[0][0]
        if self._held is None or self._held[0] != head:  # a new head: its hold starts now
            self._held = (head, loop.time())
        due = self._held[1] + self.hold_for()
        if due <= loop.time():
            return False
        if self._hold is not None and self._hold.when() != due:
            self._hold.cancel()
            self._hold = None
        if self._hold is None:
            self._hold = loop.call_at(due, self._release)
        return True

    def _release(self) -> None:
        """The hold has ended: the numbers waiting go, in a part batch if need be."""
        self._hold = None
        self._kick(part=True)

    def _take(self) -> list[Queued]:
        self._held = None  # the numbers left, if any, wait a hold of their own
        return [self._queue.popleft() for _ in range(min(self.source.max_batch, len(self._queue)))]

    def _take_background(self) -> list[Queued]:
        """Up to a batch of the background lane, skipping numbers a sync request has taken to the front."""
        batch: list[Queued] = []
        while self._background and len(batch) < self.source.max_batch:
            number, max_age = self._background.popleft()
            if number in self._background_waiting:
                self._background_waiting.discard(number)
                batch.append((number, max_age))
        return batch

    def _reject_queue(self, reason: str, outcome: str) -> None:
        self.metrics.count(self.metrics.requests, self.name, outcome)
        self._held = None
        while self._queue:
            number, _ = self._queue.popleft()
            self._settle(number, Outcome(None, reason))
        while self._background:
            number, _ = self._background.popleft()
            if number in self._background_waiting:
                self._background_waiting.discard(number)
                self._settle(number, Outcome(None, reason))

    def _settle(self, number: str, outcome: Outcome) -> None:
        future = self._inflight.pop(number, None)
        if future is not None and not future.done():
            future.set_result(outcome)

    async def _run(self, batch: list[Queued], background: bool = False) -> None:
        numbers = [number for number, _ in batch]
        ages = [age for _, age in batch if age is not None]
        started = time.perf_counter()
        try:
            try:
                async with asyncio.timeout(self.guard_seconds):
                    answers = await self.source.query(numbers, min(ages) if ages else None)
            except TimeoutError:
                raise SourceError(f"{self.name} timed out") from None
            except SourceError:
                raise
            except Exception as exc:  # a source's bug is that source's failure, never a 500
                log.exception("live source %s failed unexpectedly", self.name)
                raise SourceError(f"{self.name} failed ({type(exc).__name__})") from None
        except SourceError as exc:
            self.metrics.source_answered(self.name, "error", time.perf_counter() - started)
            if exc.retry_after is not None:
                # Told to slow down, not down: back off for as long as asked, without opening the circuit.
                self._quiet_until = max(self._quiet_until, self._clock() + exc.retry_after)
            else:
                self.breaker.failure()
            if self.usage is not None:
                self.usage.request(self.name, len(numbers), 0, failed=True)
            for number in numbers:
                self._settle(number, Outcome(None, str(exc) or f"{self.name} failed"))
        else:
            took = time.perf_counter() - started
            self.latency = took if self.latency is None else self.latency + LATENCY_WEIGHT * (took - self.latency)
            self.metrics.source_answered(self.name, "ok", took)
            self.breaker.success()
            answered = sum(1 for number in numbers if number in answers)
            if self.usage is not None:
                pricing = self.usage.pricing.get(self.name, Pricing())
                # An answer that states its cost (HLR-Lookups) counts that; the others the configured cost.
                cost = sum(
                    pricing.cost_micros if answer.cost_micros is None else answer.cost_micros
                    for number in numbers
                    if (answer := answers.get(number)) is not None
                )
                self.usage.request(self.name, len(numbers), answered, failed=False, cost_micros=cost)
                if cost:
                    self.metrics.cost.labels(self.name, pricing.currency).inc(cost / 1_000_000)
            for number in numbers:
                answer = answers.get(number)
                if answer is None:
                    answer = LiveAnswer(
                        number=number, reachable=None, error=f"{self.name} gave no answer for this number"
                    )
                self._settle(number, Outcome(answer))
        finally:
            self._running -= 1
            self._background_running -= background
            if self._queue or self._background_waiting:
                self._kick()

    async def close(self) -> None:
        if self._hold is not None:
            self._hold.cancel()
            self._hold = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for number in list(self._inflight):
            self._settle(number, Outcome(None, f"{self.name} is shutting down"))
        await self.source.close()
