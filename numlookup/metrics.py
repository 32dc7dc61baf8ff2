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
"""

from __future__ import annotations

import os

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

    def request_done(self, route: str, method: str, status: int | None, seconds: float) -> None:
        self.http_requests.labels(route, method, str(status) if status is not None else "none").inc()
        self.http_latency.labels(route).observe(seconds)

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


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")
