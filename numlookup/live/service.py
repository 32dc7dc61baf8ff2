"""Live lookups for a request: route, consult the cache, ask sources within the deadline.

``LiveService.lookup`` takes the resolutions of a request's valid numbers and
returns, per live-routed number, a ``LiveResult``: reachability, roaming, the
roaming network, porting facts, where the answer came from and when it was
checked, and what class it is charged as. Numbers routed nowhere get no entry
(their answer is the offline one). Nothing here raises for a source's failure:
a failed or late number becomes an offline answer with the reason in ``error``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

import anyio.to_thread
from sqlalchemy import Connection, Engine

from numlookup.billing.prices import ChargeClass
from numlookup.live import usage
from numlookup.live.breaker import CircuitBreaker, CircuitState
from numlookup.live.cache import CachedAnswer, CacheWriter, LiveCache
from numlookup.live.dispatcher import Dispatcher, Outcome
from numlookup.live.kinds import BuiltSource, build_sources
from numlookup.live.networks import SourceNetworks
from numlookup.live.reads import CoalescedReads
from numlookup.live.router import Router
from numlookup.live.source import LiveAnswer
from numlookup.live.usage import UsageCounter
from numlookup.metrics import Metrics
from numlookup.numbering import Resolver
from numlookup.numbering.models import Network, Resolution
from numlookup.settings import Settings
from numlookup.store.engine import write_transaction

log = logging.getLogger("numlookup.live")

OFFLINE_USED = "prefix based response used"
TIMED_OUT = f"Live lookup timed out; {OFFLINE_USED}"


@dataclass(frozen=True, slots=True)
class LiveResult:
    """What the live layer adds to one number's offline answer.

    ``source`` is ``cache``, ``osmo-hlr``, ``upstream:<name>``, or ``offline`` when
    the live query failed or was late (then ``error`` says why). ``ported_network``
    applies only when ``ported_known``: a live source said where the number is now.
    """

    source: str
    checked_at: datetime
    charge_class: ChargeClass
    invalid: bool = False  # the network says the number is not in service
    reachable: bool | None = None
    roaming: bool | None = None
    roaming_network: Network | None = None
    ported_known: bool = False
    ported_network: Network | None = None
    error: str | None = None
    # A fresh live answer, for the request to store in the cache within its charge transaction.
    answer: LiveAnswer | None = None


@dataclass(frozen=True, slots=True)
class _Credits:
    """Micro-credits a request's customer pays for its live answers, by source: stored only if its charge is.

    Plain sums, one day's: a charge commit carries one per request, and adds
    them up as integers before it makes the day rows' counts (one ``Counts`` per
    request, merged field by field, was 5 ms of a 1,000-request burst's commits,
    with the event loop's GIL held; py-spy --gil).
    """

    day: date
    micros: dict[str, int]


@dataclass(slots=True)
class _Attempt:
    """One number's way along its route's sources: which source is being asked now, and who said what."""

    number: str
    chain: tuple[str, ...]
    source: str
    future: asyncio.Future[Outcome]
    reasons: list[str] = field(default_factory=list)


class LiveService:
    def __init__(
        self,
        router: Router,
        sources: dict[str, BuiltSource],
        cache: LiveCache,
        resolver: Resolver,
        metrics: Metrics,
        *,
        deadline_seconds: float = 5.0,
        breaker_failures: int = 5,
        breaker_reset_seconds: float = 10.0,
        background_concurrency: int | None = None,
    ) -> None:
        self.router = router
        self.cache = cache
        self.resolver = resolver
        self.networks = SourceNetworks(resolver)
        self.metrics = metrics
        self.deadline_seconds = deadline_seconds
        self.writer = CacheWriter(cache)
        # Cache reads run on the loop where the database allows (a SQLite file: LiveCache.read_here), else
        # in threads of their own: in the shared pool they would queue behind charges waiting for the
        # database's writer lock, and a hit would cost as much as a write.
        self._readers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="live-cache-read")
        self._reads = CoalescedReads(cache, self._readers, here=cache.read_here)
        self.usage = UsageCounter(pricing={name: built.pricing for name, built in sources.items()})
        self.dispatchers: dict[str, Dispatcher] = {}
        for name, built in sources.items():
            breaker = CircuitBreaker(name, breaker_failures, breaker_reset_seconds, on_change=metrics.circuit_changed)
            metrics.circuit_changed(name, CircuitState.CLOSED)
            self.dispatchers[name] = Dispatcher(
                built.source,
                breaker,
                metrics,
                max_concurrency=built.concurrency,
                guard_seconds=built.guard_seconds,
                usage=self.usage,
                background_limit=background_concurrency,
            )

    @classmethod
    def from_settings(
        cls, settings: Settings, engine: Engine, resolver: Resolver, metrics: Metrics
    ) -> LiveService | None:
        """None when no route leads to a live source: then every answer is offline, as before."""
        router = Router.from_settings(settings)
        if not router.sources:
            return None
        cache = LiveCache(engine, settings.live_ttl_reachability_seconds, settings.live_ttl_network_seconds)
        return cls(
            router,
            build_sources(settings, router.sources, resolver),
            cache,
            resolver,
            metrics,
            deadline_seconds=settings.live_deadline_seconds,
            breaker_failures=settings.live_breaker_failures,
            breaker_reset_seconds=settings.live_breaker_reset_seconds,
            background_concurrency=settings.job_live_concurrency,
        )

    def routes(self, resolutions: Sequence[Resolution]) -> dict[str, tuple[tuple[str, ...], Resolution]]:
        """E.164 → (its route's sources in order, resolution) for the numbers a live source serves."""
        routed: dict[str, tuple[tuple[str, ...], Resolution]] = {}
        for resolution in resolutions:
            if resolution.e164 is not None and resolution.e164 not in routed:
                chain = self.router.route(resolution)
                if chain:
                    routed[resolution.e164] = (chain, resolution)
        return routed

    async def lookup(
        self,
        resolutions: Sequence[Resolution],
        max_age: float | None = None,
        deadline: float | None = None,
        *,
        background: bool = False,
        routed: Mapping[str, tuple[tuple[str, ...], Resolution]] | None = None,
    ) -> dict[str, LiveResult]:
        """Live results of the routed numbers among ``resolutions``, within the deadline.

        ``background``: a bulk job's numbers, which go behind sync numbers in
        each source's lane for jobs (see ``dispatcher``) and wait up to
        ``deadline`` (the job's own), not capped by the sync deadline.
        ``routed``: what ``routes(resolutions)`` returned, when the caller has it
        (the sync lookup routes its numbers for the quote first), not routed again.
        """
        loop = asyncio.get_running_loop()
        if background and deadline is not None:
            budget = deadline
        else:
            budget = self.deadline_seconds if deadline is None else min(deadline, self.deadline_seconds)
        ends = loop.time() + budget
        if routed is None:
            routed = self.routes(resolutions)
        if not routed:
            return {}
        now = datetime.now(UTC)
        read = self._reads.read(list(routed))
        late = loop.call_at(ends, _expire, read)  # the deadline: no Timeout scope (see _wait_until)
        try:
            cached = await read
        except Exception:  # an unreadable cache means asking the sources, not failing
            log.exception("live cache read failed")
            cached = {}
        finally:
            late.cancel()
        results: dict[str, LiveResult] = {}
        attempts: dict[str, _Attempt] = {}
        for number, (chain, resolution) in routed.items():
            hit = cached.get(number)
            if hit is not None and self.cache.fresh(hit, now, max_age):
                self.metrics.count(self.metrics.cache, "hit")
                results[number] = self._answered(resolution, hit.answer, "cache", hit.checked_at, "cache")
            else:
                self.metrics.count(self.metrics.cache, "miss")
                attempts[number] = self._attempt(number, chain, max_age, ends, background)
        if attempts:
            await _wait_until([a.future for a in attempts.values()], ends)
            answered_at = datetime.now(UTC)
            for number, attempt in attempts.items():
                _, resolution = routed[number]
                if attempt.future.done():
                    outcome = attempt.future.result()
                    if outcome.answer is not None and outcome.answer.says_something:
                        checked = outcome.answer.checked_at or answered_at
                        results[number] = self._answered(
                            resolution, outcome.answer, attempt.source, checked, "live", fresh=True
                        )
                        continue
                    error = _failure_text(attempt, outcome)
                else:
                    self.metrics.timeouts.labels(attempt.source).inc()
                    attempt.future.add_done_callback(partial(self._late, attempt))  # keep the answer when it comes
                    error = TIMED_OUT
                results[number] = self._offline(resolution, cached.get(number), answered_at, error)
        return results

    def _attempt(
        self, number: str, chain: tuple[str, ...], max_age: float | None, ends: float, background: bool = False
    ) -> _Attempt:
        """Ask the route's first source; on its failure, the next, while the request's deadline allows.

        A single-source route needs no task: its attempt is the dispatcher's own
        future, shared with every request asking the same number meanwhile.
        """
        first = self.dispatchers[chain[0]].submit(number, max_age, background=background)
        attempt = _Attempt(number, chain, chain[0], first)
        if len(chain) > 1:
            attempt.future = asyncio.ensure_future(self._failover(attempt, first, max_age, ends, background))
        return attempt

    async def _failover(
        self,
        attempt: _Attempt,
        first: asyncio.Future[Outcome],
        max_age: float | None,
        ends: float,
        background: bool = False,
    ) -> Outcome:
        loop = asyncio.get_running_loop()
        future = first
        for position, source in enumerate(attempt.chain):
            attempt.source = source
            if position:
                future = self.dispatchers[source].submit(attempt.number, max_age, background=background)
            # Shielded: the dispatcher's future is shared by every request asking this number.
            outcome = await asyncio.shield(future)
            if outcome.answer is not None and outcome.answer.says_something:
                return outcome
            reason = _reason(source, outcome)
            attempt.reasons.append(reason if reason.startswith(source) else f"{source}: {reason}")
            if loop.time() >= ends:
                break
        return outcome

    # ------------------------------------------------------------------ answers

    def cache_rows(self, results: dict[str, LiveResult]) -> list[dict[str, object]]:
        """The fresh live answers of a request, as cache rows for its charge transaction."""
        now = datetime.now(UTC)
        return self.cache.values(((r.source, r.answer) for r in results.values() if r.answer is not None), now)

    def attachment(
        self,
        results: dict[str, LiveResult],
        price_of: Callable[[ChargeClass], int],
        charged: Collection[str] | None = None,
    ) -> list[dict[str, object] | _Credits]:
        """What a request's charge transaction stores for the live layer: fresh answers, credits by source.

        ``charged``: the numbers whose answers are charged (all when None); a bulk
        job's repeat of a number charged in an earlier chunk stores its answer only.
        """
        attached: list[dict[str, object] | _Credits] = list(self.cache_rows(results))
        by_source: dict[str, int] = {}
        for number, result in results.items():
            if result.charge_class != "offline" and (charged is None or number in charged):
                by_source[result.source] = by_source.get(result.source, 0) + price_of(result.charge_class)
        if by_source:
            attached.append(_Credits(datetime.now(UTC).date(), by_source))
        return attached

    def store(self, conn: Connection, attached: Sequence[object]) -> Callable[[], None] | None:
        """Inside a charge transaction: the requests' fresh answers, their credits, and the usage counted since.

        Returns what to run once the transaction has committed: the counts it
        stored then leave this worker's memory.
        """
        self.cache.upsert(conn, [item for item in attached if isinstance(item, dict)])
        taken = self.usage.take()
        credits: dict[usage.Key, int] = {}
        for item in attached:
            if isinstance(item, _Credits):
                for source, micros in item.micros.items():
                    credits[item.day, source] = credits.get((item.day, source), 0) + micros
        charged = {key: usage.Counts(credits_micros=micros) for key, micros in credits.items() if micros}
        usage.store(conn, usage.merged(taken, charged), self.usage.pricing)
        return partial(self.usage.commit, taken) if taken else None

    def flush_usage(self) -> None:
        """Store the usage counted since the last commit, in a transaction of its own (an idle worker's)."""
        taken = self.usage.take()
        if not taken:
            return
        with write_transaction(self.cache.engine) as conn:
            usage.store(conn, taken, self.usage.pricing)
        self.usage.commit(taken)

    async def follow_usage(self) -> None:
        """While the worker runs: flush usage that no charge commit has carried for ``usage.FLUSH_SECONDS``."""
        while True:
            await asyncio.sleep(usage.FLUSH_SECONDS)
            try:
                await anyio.to_thread.run_sync(self.flush_usage)
            except Exception:  # the counts stay in memory for the next commit
                log.exception("storing live source usage failed")

    def _late(self, attempt: _Attempt, future: asyncio.Future[Outcome]) -> None:
        """An answer that came after its request's deadline: no request will store it, so the writer does."""
        if not future.cancelled() and (answer := future.result().answer) is not None and answer.says_something:
            self.writer.put([(attempt.source, answer)])

    def _offline(self, resolution: Resolution, cached: CachedAnswer | None, now: datetime, error: str) -> LiveResult:
        """A failed or late live query: the offline answer, with porting facts still fresh in the cache."""
        known, ported = self.networks.porting(resolution, cached.answer) if cached is not None else (False, None)
        return LiveResult(
            source="offline",
            checked_at=now,
            charge_class="offline",
            ported_known=known,
            ported_network=ported,
            error=error,
        )

    def _answered(
        self,
        resolution: Resolution,
        answer: LiveAnswer,
        source: str,
        checked_at: datetime,
        charge_class: ChargeClass,
        *,
        fresh: bool = False,
    ) -> LiveResult:
        """``fresh``: a source's answer just now, kept in the result for the request's charge to store in the cache."""
        known, ported = self.networks.porting(resolution, answer)
        home = (ported if known else resolution.current_network) or resolution.original_network
        # Where a subscriber roams is news only while it is reachable: a detached
        # subscriber's last VLR says where it was, not where it is.
        location = self.networks.location(answer, resolution) if answer.reachable else None
        roaming = answer.roaming if answer.reachable else None
        if roaming is None and location is not None and home is not None:
            if location.mccmnc and home.mccmnc:
                roaming = location.mccmnc != home.mccmnc
            else:
                roaming = location.country.calling_code != home.country.calling_code
        return LiveResult(
            source=source,
            checked_at=checked_at,
            charge_class=charge_class,
            invalid=answer.invalid,
            reachable=answer.reachable,
            roaming=roaming,
            roaming_network=location if roaming else None,
            ported_known=known,
            ported_network=ported,
            error=answer.error,
            answer=answer if fresh else None,
        )

    async def close(self) -> None:
        await asyncio.gather(*(d.close() for d in self.dispatchers.values()), return_exceptions=True)
        await self.writer.flush()
        try:
            await anyio.to_thread.run_sync(self.flush_usage)
        except Exception:
            log.exception("storing live source usage at shutdown failed")
        self._readers.shutdown(wait=False)
        self.cache.close()


def _reason(source: str, outcome: Outcome) -> str:
    """Why ``source`` gave nothing for the number: its failure, or its own words."""
    if outcome.failure is not None:
        return outcome.failure
    return (outcome.answer.error if outcome.answer else None) or f"{source} could not tell"


def _expire(future: asyncio.Future[Any]) -> None:
    """A cache read still pending at the request's deadline fails as ``asyncio.timeout`` would have failed it."""
    if not future.done():
        future.set_exception(TimeoutError())


async def _wait_until(futures: Sequence[asyncio.Future[Outcome]], ends: float) -> None:
    """Until every future is done or the loop's clock reaches ``ends``: ``asyncio.wait`` with one timer, no sets.

    Why: every live request waits once for its numbers; ``asyncio.wait`` makes
    sets of them, checks each for a coroutine, builds the done and pending sets
    and schedules its timer by delay, and the cache read before it entered an
    ``asyncio.timeout`` scope (a second timer, the current task looked up twice):
    in a py-spy --gil profile of bench/live.py's bursts the two held 3 % of the
    worker's samples (156 of 5,110, with the collections their allocations set
    off), a sixth of the live step's. The futures are never cancelled here.
    """
    loop = asyncio.get_running_loop()
    pending = [future for future in futures if not future.done()]
    if not pending or ends <= loop.time():
        return
    waiter: asyncio.Future[None] = loop.create_future()
    left = len(pending)

    def one_done(_: asyncio.Future[Outcome]) -> None:
        nonlocal left
        left -= 1
        if not left and not waiter.done():
            waiter.set_result(None)

    def deadline() -> None:
        if not waiter.done():
            waiter.set_result(None)

    for future in pending:
        future.add_done_callback(one_done)
    timer = loop.call_at(ends, deadline)
    try:
        await waiter
    finally:
        timer.cancel()
        for future in pending:
            future.remove_done_callback(one_done)


def _failure_text(attempt: _Attempt, outcome: Outcome) -> str:
    """The ``error`` of a number no source of its route could answer: each source's reason, in order."""
    if len(attempt.chain) > 1:
        return f"Live lookup failed: {'; '.join(attempt.reasons)}; {OFFLINE_USED}"
    if outcome.failure is not None:
        return f"Live lookup failed: {outcome.failure}; {OFFLINE_USED}"
    told = _reason(attempt.source, outcome)  # the source answered but could not tell; its own words say why
    return told if told.endswith(OFFLINE_USED) else f"{told}; {OFFLINE_USED}"
