"""The node's metrics in the Prometheus text format (``GET /metrics``).

HTTP requests by route and status with their latency, lookups by outcome and
source, micro-credits spent, charge batch sizes, and the live sources' requests,
latency, cache hits and circuit states.

Each app gets its own registry, so several apps in one process (tests) do not
collide. ``numlookup serve`` runs prometheus-client's multiprocess mode (it sets
``PROMETHEUS_MULTIPROC_DIR`` to a folder of its own before any worker starts,
see ``serving``), so whichever worker answers a scrape reports the whole node:
counters and histograms summed over its workers, the circuit state as the worst
of its live workers. Without that variable (an app built in-process) the figures
are the process's own.

The request path's counts (requests, their latency, numbers answered, credits
spent) are written once per turn of the event loop rather than once per event.
Why: in multiprocess mode every increment takes a lock and writes a memory-mapped
file, and a lookup of ten numbers made a dozen of them, a few per cent of a loaded
worker's time; a turn that answers thirty requests now adds each label's sum once.
The flush runs as soon as the turn's callbacks are done, before the next request
is read, so a scrape never misses a request that was answered before it came.
"""

from __future__ import annotations

import asyncio
import os
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from threading import get_ident

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.http_requests = Counter(
            "numlookup_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "numlookup_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response, by route template.",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=self.registry,
        )
        self.lookups = Counter(
            "numlookup_lookups",
            "Numbers answered by POST /v1/hlr/sync, by status (online, offline, unknown, invalid) and source.",
            ["status", "source"],
            registry=self.registry,
        )
        # Micro-credits, the ledger's own unit, in whole-number steps: a float counter fed
        # amount / 1e6 drifted from the ledger's sums (0.1 + 0.2 != 0.3). A float holds
        # every integer up to 2**53 exactly: 9 billion credits before the count could round.
        self.credits_spent = Counter(
            "numlookup_credits_spent_micros",
            "Micro-credits (1e-6 credit) charged for lookups, all accounts; the ledger has them per account.",
            registry=self.registry,
        )
        self.requests = Counter(
            "numlookup_live_source_requests",
            "Requests to live sources (one per batch), by outcome: ok, error, rejected (circuit open), "
            "backoff (the source asked us to slow down).",
            ["source", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "numlookup_live_source_latency_seconds",
            "Time a live source took to answer a batch (failures included).",
            ["source"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0),
            registry=self.registry,
        )
        self.cache = Counter(
            "numlookup_live_cache_lookups",
            "Live-routed numbers looked up in the cache, by result: hit or miss. Hit ratio: hit / (hit + miss).",
            ["result"],
            registry=self.registry,
        )
        self.cost = Counter(
            "numlookup_live_source_cost",
            "What live sources charge us for the numbers they answered, in the source's currency "
            "(a measure of use; the exact figures are in `numlookup sources usage`).",
            ["source", "currency"],
            registry=self.registry,
        )
        self.timeouts = Counter(
            "numlookup_live_deadline_expired",
            "Numbers answered offline because the request's deadline passed first.",
            ["source"],
            registry=self.registry,
        )
        self.circuit = Gauge(
            "numlookup_live_circuit_state",
            "Circuit breaker state per source: 0 closed, 1 half-open, 2 open (the worst among the node's workers).",
            ["source"],
            registry=self.registry,
            multiprocess_mode="livemax",
        )

        self.charge_batch = Histogram(
            "numlookup_charge_batch_size",
            "Charges committed per transaction (group commit).",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=self.registry,
        )

        self._children: dict[tuple[object, ...], Counter | Histogram] = {}
        # Every request's two children by (route, method, status): one lookup instead of two keys built.
        self._request_children: dict[tuple[str, str, int | None], tuple[Counter, Histogram]] = {}
        # A live source's two children per request by (source, outcome), as a request's above.
        self._source_children: dict[tuple[str, str], tuple[Counter, Histogram]] = {}
        self._added: dict[Counter, float] = {}
        self._observed: list[tuple[Histogram, float]] = []
        self._flush_due = False
        self._flush_thread = 0  # the thread whose loop runs the due flush
        self.served = 0  # requests this worker answered: its heartbeat's count (``store.nodes``)

    def request_done(self, route: str, method: str, status: int | None, seconds: float) -> None:
        self.served += 1
        key = (route, method, status)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (
                self._counter(self.http_requests, route, method, str(status) if status is not None else "none"),
                self._histogram(self.http_latency, route),
            )
        self._count_and_observe(children, seconds)

    def source_answered(self, source: str, outcome: str, seconds: float) -> None:
        """A live source's request done (``ok`` or ``error``): counted and its latency observed, with the turn's events.

        Written at once, each was a ``labels()`` look-up and a locked write to the worker's file:
        7.6 µs of the loop an upstream request, against 1.7 deferred (timeit, multiprocess files).
        """
        key = (source, outcome)
        children = self._source_children.get(key)
        if children is None:
            children = self._source_children[key] = (
                self._counter(self.requests, source, outcome),
                self._histogram(self.latency, source),
            )
        self._count_and_observe(children, seconds)

    def _count_and_observe(self, children: tuple[Counter, Histogram], seconds: float) -> None:
        """One more of a (counter, histogram) pair's counter, and ``seconds`` observed by its histogram."""
        counter, histogram = children
        self._add(counter)
        self._observe(histogram, seconds)

    def lookups_counted(self, counted: Mapping[tuple[str, str], int]) -> None:
        """Numbers answered, counted by ``(status, source)``: the ``numlookup_lookups`` counter."""
        for (status, source), count in counted.items():
            self._add(self._counter(self.lookups, status, source), count)

    def credits_charged(self, micros: int) -> None:
        self._add(self.credits_spent, micros)

    def count(self, family: Counter, *labels: str) -> None:
        """One more of ``family`` with these label values, written with this loop turn's other counts."""
        self._add(self._counter(family, *labels))

    def flush(self) -> None:
        """Write what this loop turn counted (also at shutdown, before the worker's files are left)."""
        self._flush_due = False
        added, self._added = self._added, {}
        observed, self._observed = self._observed, []
        for counter, amount in added.items():
            counter.inc(amount)
        if observed:
            by_histogram: dict[Histogram, list[float]] = {}
            for histogram, value in observed:
                by_histogram.setdefault(histogram, []).append(value)
            for histogram, values in by_histogram.items():
                observe_all(histogram, values)

    def _counter(self, family: Counter, *labels: str) -> Counter:
        key = (family, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(*labels)
        assert isinstance(child, Counter)
        return child

    def _histogram(self, family: Histogram, *labels: str) -> Histogram:
        key = (family, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = family.labels(*labels)
        assert isinstance(child, Histogram)
        return child

    def _deferred(self) -> bool:
        """Whether the event is left to this loop turn's flush; False outside a loop (a thread): write it now.

        Once a flush is due, an event from the thread that scheduled it (the loop's) joins it
        without asking for the running loop again: on Python 3.11 that asks the OS for the
        process id each time, and a request counted a dozen events.
        """
        if self._flush_due and get_ident() == self._flush_thread:
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        if not self._flush_due:
            loop.call_soon(self.flush)
            self._flush_due = True
            self._flush_thread = get_ident()
        return True

    def _add(self, counter: Counter, amount: float = 1.0) -> None:
        if self._deferred():
            self._added[counter] = self._added.get(counter, 0.0) + amount
        else:
            counter.inc(amount)

    def _observe(self, histogram: Histogram, value: float) -> None:
        if self._deferred():
            self._observed.append((histogram, value))
        else:
            histogram.observe(value)

    def circuit_changed(self, source: str, state: int) -> None:
        """A source's circuit moved to ``state`` (the breaker's ``CircuitState``: 0 closed, 1 half-open, 2 open)."""
        self.circuit.labels(source).set(state)

    def render(self) -> bytes:
        if multiprocess_dir() is None:
            return generate_latest(self.registry)
        node = CollectorRegistry()
        multiprocess.MultiProcessCollector(node)  # type: ignore[no-untyped-call]  # prometheus-client: unannotated
        return generate_latest(node)

    @staticmethod
    def worker_stopped() -> None:
        """Drop this worker's live gauges (its circuit states) from the node's figures."""
        if multiprocess_dir() is not None:
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]  # unannotated upstream


def observe_all(histogram: Histogram, values: Sequence[float]) -> None:
    """``histogram.observe(value)`` for each of ``values``: one write of the sum, one per bucket they fall in.

    Why: in multiprocess mode ``observe`` writes the memory-mapped file twice (the
    sum, then the value's bucket), each write under a lock with a check of the
    process id: 1.7 µs a request's latency, where one flush writes a loop turn's
    requests (under load some thirty, all settled by one group commit). The
    buckets are ``observe``'s (the first upper bound not below the value); the sum
    is the values' added up first, then added once, so its last bits may round
    differently from thirty additions (a sum of durations, not money).
    """
    if len(values) == 1:
        histogram.observe(values[0])
        return
    # The labelled histogram's own attributes, the ones ``observe`` uses (prometheus-client 0.26's):
    # tests/test_metrics.py holds what this writes to what ``observe`` writes. A release without
    # them (they are private) gets ``observe`` per value, as before.
    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    if bounds is None or buckets is None or not hasattr(histogram, "_sum"):
        for value in values:
            histogram.observe(value)
        return
    counts: dict[int, int] = {}
    total = 0.0
    for value in values:
        i = bisect_left(bounds, value)  # the first bound >= value; the last bound is +Inf
        counts[i] = counts.get(i, 0) + 1
        total += value
    histogram._raise_if_not_observable()  # type: ignore[no-untyped-call]  # unannotated upstream
    histogram._sum.inc(total)
    for i, count in counts.items():
        buckets[i].inc(count)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")
