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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cached_property, partial

import phonenumbers
from sqlalchemy import Connection, Engine

from numlookup.billing.prices import ChargeClass
from numlookup.live.breaker import CircuitBreaker, CircuitState
from numlookup.live.cache import CachedAnswer, CacheWriter, LiveCache
from numlookup.live.dispatcher import Dispatcher, Outcome
from numlookup.live.reads import CoalescedReads
from numlookup.live.router import Router
from numlookup.live.source import LiveAnswer, LiveSource
from numlookup.live.upstream import UpstreamSource
from numlookup.metrics import Metrics
from numlookup.numbering import Resolver
from numlookup.numbering.countries import NON_GEOGRAPHIC, country_for_region
from numlookup.numbering.models import Country, Network, Resolution
from numlookup.settings import OSMO_HLR, UPSTREAM_PREFIX, Settings

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
    reachable: bool | None = None
    roaming: bool | None = None
    roaming_network: Network | None = None
    ported_known: bool = False
    ported_network: Network | None = None
    error: str | None = None
    # A fresh live answer, for the request to store in the cache within its charge transaction.
    answer: LiveAnswer | None = None


def build_sources(settings: Settings, names: set[str]) -> dict[str, tuple[LiveSource, int, float]]:
    """The sources the routes use: name → (source, max concurrency, guard timeout in seconds)."""
    built: dict[str, tuple[LiveSource, int, float]] = {}
    for name in sorted(names):
        if name == OSMO_HLR:
            from numlookup.live.osmo_hlr import OsmoHlrSource  # written separately; imported only when routed to

            osmo = settings.osmo_hlr
            assert osmo is not None  # checked by Settings
            concurrency = osmo.max_concurrency or settings.live_max_concurrency
            source: LiveSource = OsmoHlrSource(osmo.host, osmo.port, osmo.timeout, concurrency, osmo.vlr_map)
            built[name] = (source, concurrency, osmo.timeout + 1.0)
        elif name.startswith(UPSTREAM_PREFIX):
            key = name.removeprefix(UPSTREAM_PREFIX)
            up = settings.upstreams[key]
            concurrency = up.max_concurrency or settings.live_max_concurrency
            source = UpstreamSource(
                key,
                up.url,
                up.username,
                up.password,
                max_batch=up.max_batch,
                timeout=up.timeout,
                max_connections=concurrency,
            )
            built[name] = (source, concurrency, up.timeout * 2 + 1.0)
    return built


class LiveService:
    def __init__(
        self,
        router: Router,
        sources: dict[str, tuple[LiveSource, int, float]],
        cache: LiveCache,
        resolver: Resolver,
        metrics: Metrics,
        *,
        deadline_seconds: float = 5.0,
        breaker_failures: int = 5,
        breaker_reset_seconds: float = 10.0,
    ) -> None:
        self.router = router
        self.cache = cache
        self.resolver = resolver
        self.metrics = metrics
        self.deadline_seconds = deadline_seconds
        self.writer = CacheWriter(cache)
        # Cache reads get threads of their own: in the shared pool they would queue behind
        # charges waiting for the database's writer lock, and a hit would cost as much as a write.
        self._readers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="live-cache-read")
        self._reads = CoalescedReads(cache, self._readers)
        self.dispatchers: dict[str, Dispatcher] = {}
        for name, (source, concurrency, guard) in sources.items():
            breaker = CircuitBreaker(name, breaker_failures, breaker_reset_seconds, on_change=metrics.circuit_changed)
            metrics.circuit_changed(name, CircuitState.CLOSED)
            self.dispatchers[name] = Dispatcher(
                source, breaker, metrics, max_concurrency=concurrency, guard_seconds=guard
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
            build_sources(settings, router.sources),
            cache,
            resolver,
            metrics,
            deadline_seconds=settings.live_deadline_seconds,
            breaker_failures=settings.live_breaker_failures,
            breaker_reset_seconds=settings.live_breaker_reset_seconds,
        )

    def routes(self, resolutions: Sequence[Resolution]) -> dict[str, tuple[str, Resolution]]:
        """E.164 → (source name, resolution) for the numbers a live source serves."""
        routed: dict[str, tuple[str, Resolution]] = {}
        for resolution in resolutions:
            if resolution.e164 is not None and resolution.e164 not in routed:
                source = self.router.route(resolution)
                if source is not None and source in self.dispatchers:
                    routed[resolution.e164] = (source, resolution)
        return routed

    async def lookup(
        self, resolutions: Sequence[Resolution], max_age: float | None = None, deadline: float | None = None
    ) -> dict[str, LiveResult]:
        loop = asyncio.get_running_loop()
        budget = self.deadline_seconds if deadline is None else min(deadline, self.deadline_seconds)
        ends = loop.time() + budget
        routed = self.routes(resolutions)
        if not routed:
            return {}
        now = datetime.now(UTC)
        try:
            async with asyncio.timeout(budget):
                cached = await self._reads.read(list(routed))
        except Exception:  # an unreadable cache means asking the sources, not failing
            log.exception("live cache read failed")
            cached = {}
        results: dict[str, LiveResult] = {}
        waiting: dict[str, asyncio.Future[Outcome]] = {}
        for number, (source, resolution) in routed.items():
            hit = cached.get(number)
            if hit is not None and self.cache.fresh(hit, now, max_age):
                self.metrics.cache.labels("hit").inc()
                results[number] = self._answered(resolution, hit.answer, "cache", hit.checked_at, "cache")
            else:
                self.metrics.cache.labels("miss").inc()
                waiting[number] = self.dispatchers[source].submit(number, max_age)
        if waiting:
            await asyncio.wait(waiting.values(), timeout=max(0.0, ends - loop.time()))
            answered_at = datetime.now(UTC)
            for number, future in waiting.items():
                source, resolution = routed[number]
                if future.done():
                    outcome = future.result()
                    if outcome.answer is not None and outcome.answer.reachable is not None:
                        checked = outcome.answer.checked_at or answered_at
                        result = self._answered(resolution, outcome.answer, source, checked, "live")
                        results[number] = replace(result, answer=outcome.answer)
                        continue
                    if outcome.failure is not None:
                        error = f"Live lookup failed: {outcome.failure}; {OFFLINE_USED}"
                    else:  # the source answered but could not tell; its own words say why
                        told = (outcome.answer.error if outcome.answer else None) or f"{source} could not tell"
                        error = told if told.endswith(OFFLINE_USED) else f"{told}; {OFFLINE_USED}"
                else:
                    self.metrics.timeouts.labels(source).inc()
                    future.add_done_callback(partial(self._late, source))  # keep the answer when it comes
                    error = TIMED_OUT
                results[number] = self._offline(resolution, cached.get(number), answered_at, error)
        return results

    # ------------------------------------------------------------------ answers

    def cache_rows(self, results: dict[str, LiveResult]) -> list[dict[str, object]]:
        """The fresh live answers of a request, as cache rows for its charge transaction."""
        now = datetime.now(UTC)
        return self.cache.values(((r.source, r.answer) for r in results.values() if r.answer is not None), now)

    def store(self, conn: Connection, rows: list[dict[str, object]]) -> None:
        self.cache.upsert(conn, rows)

    def _late(self, source: str, future: asyncio.Future[Outcome]) -> None:
        """An answer that came after its request's deadline: no request will store it, so the writer does."""
        if not future.cancelled() and (answer := future.result().answer) is not None:
            self.writer.put([(source, answer)])

    def _offline(self, resolution: Resolution, cached: CachedAnswer | None, now: datetime, error: str) -> LiveResult:
        """A failed or late live query: the offline answer, with porting facts still fresh in the cache."""
        known, ported = self._porting(resolution, cached.answer) if cached is not None else (False, None)
        return LiveResult(
            source="offline",
            checked_at=now,
            charge_class="offline",
            ported_known=known,
            ported_network=ported,
            error=error,
        )

    def _answered(
        self, resolution: Resolution, answer: LiveAnswer, source: str, checked_at: datetime, charge_class: ChargeClass
    ) -> LiveResult:
        known, ported = self._porting(resolution, answer)
        home = (ported if known else resolution.current_network) or resolution.original_network
        # Where a subscriber roams is news only while it is reachable: a detached
        # subscriber's last VLR says where it was, not where it is.
        location = self._location(answer, resolution) if answer.reachable else None
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
            reachable=answer.reachable,
            roaming=roaming,
            roaming_network=location if roaming else None,
            ported_known=known,
            ported_network=ported,
            error=answer.error,
        )

    def _porting(self, resolution: Resolution, answer: LiveAnswer) -> tuple[bool, Network | None]:
        """(does the answer know the current network, the ported network or None when at home)."""
        if answer.ported_mccmnc is None:
            return False, None
        original = resolution.original_network
        if original is not None and original.mccmnc == answer.ported_mccmnc:
            return True, None
        return True, self.network(answer.ported_mccmnc, resolution.country)

    def _location(self, answer: LiveAnswer, resolution: Resolution) -> Network | None:
        """The network serving the subscriber: from the MCC/MNC a source gave, or the VLR/MSC global title."""
        if answer.roaming_mccmnc:
            return self.network(answer.roaming_mccmnc, None)
        if answer.roaming_gt:
            [gt] = self.resolver.resolve(["+" + answer.roaming_gt.lstrip("+")])
            if gt.original_network is not None:
                return gt.original_network
            digits = answer.roaming_gt.lstrip("+")
            for length in (1, 2, 3):  # not a valid number (GTs of switches often are not): its calling code
                region = phonenumbers.region_code_for_country_code(int(digits[:length] or 0))
                if region not in (phonenumbers.UNKNOWN_REGION, NON_GEOGRAPHIC):
                    return Network(mccmnc=None, name=None, country=country_for_region(region))
        return None

    def network(self, mccmnc: str, fallback: Country | None) -> Network | None:
        """A registry network by MCC/MNC; its country from the registry, else the MCC's, else ``fallback``."""
        record = self.resolver.networks.records.get(mccmnc)
        region = (record.countries[:1] or (None,))[0] if record is not None else None
        country = country_for_region(region) if region else self._mcc_countries.get(mccmnc[:3]) or fallback
        if country is None:
            return None
        return Network(mccmnc=mccmnc, name=record.name if record is not None else None, country=country)

    @cached_property
    def _mcc_countries(self) -> dict[str, Country]:
        found: dict[str, Country] = {}
        for record in self.resolver.networks.records.values():
            if record.countries and record.mcc not in found:
                found[record.mcc] = country_for_region(record.countries[0])
        return found

    async def close(self) -> None:
        await asyncio.gather(*(d.close() for d in self.dispatchers.values()), return_exceptions=True)
        await self.writer.flush()
        self._readers.shutdown(wait=False)
