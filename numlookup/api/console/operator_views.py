"""What the operator's console pages show, as plain values: read from the database and this worker's live layer.

Why a module apart from the routes (``operator.py``): the figures are the
console's substance and are tested directly against a real database, while the
routes only check the session, call these in a worker thread and render. Each
function takes what it reads (an engine, a connection, the live service) and
returns frozen dataclasses; money stays integers of micro-credits until a
template formats it with ``format_amount``.

The changes an operator makes (create an account, top it up, disable or enable
it) go through the very service functions the admin API and the CLI call, with
their validation; :func:`refusal` turns their refusals into the sentence the
page shows, as ``api/admin/calls.py`` turns them into the wire's errors.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from sqlalchemy import Engine

from numlookup.accounts import AccountConflict, AccountError, NotFound, UnknownAccount, service
from numlookup.accounts.allowlist import AllowListError
from numlookup.api.console import charts
from numlookup.billing import BelowZero, LedgerError
from numlookup.billing.ledger import Charge
from numlookup.billing.money import AmountError, format_amount, parse_amount
from numlookup.billing.rollup import UsageBucket
from numlookup.datasets import catalog
from numlookup.live import usage
from numlookup.live.breaker import CircuitState
from numlookup.live.kinds import kind_of
from numlookup.live.service import LiveService
from numlookup.metrics import Metrics
from numlookup.settings import UPSTREAM_PREFIX, Settings
from numlookup.store.nodes import STALE_AFTER, Node

# ------------------------------------------------------------------------------------------ ranges

RangeName = Literal["24h", "30d", "90d"]
Bucket = Literal["hour", "day"]
RANGES: dict[str, tuple[timedelta, Bucket]] = {
    "24h": (timedelta(hours=24), "hour"),
    "30d": (timedelta(days=30), "day"),
    "90d": (timedelta(days=90), "day"),
}
DEFAULT_RANGE = "30d"


@dataclass(frozen=True, slots=True)
class Span:
    """A chart's range: ``since`` (inclusive) to ``until`` (exclusive), whole buckets, the current one included."""

    name: str
    since: datetime
    until: datetime
    bucket: Bucket


def chart_data(buckets: Sequence[UsageBucket], chosen: Span) -> dict[str, object]:
    """The charts' JSON (``console.charts``) with the range and bucket it covers."""
    return {"range": chosen.name, "bucket": chosen.bucket, **charts.chart_data(buckets)}


def span(name: str | None, now: datetime | None = None) -> Span | None:
    """The range ``name`` (24h, 30d, 90d; None: 30d) ending with the bucket ``now`` falls in; None if unknown.

    24 hours are 24 whole hours, the current one last; 30 and 90 days are whole
    UTC days, today last, so every bucket a chart shows is a full one of the
    rollup's (and the same bucket starts whoever asks, whenever).
    """
    chosen = DEFAULT_RANGE if name is None else name
    if chosen not in RANGES:
        return None
    length, bucket = RANGES[chosen]
    now = (now or datetime.now(UTC)).astimezone(UTC)
    if bucket == "hour":
        until = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    else:
        until = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return Span(chosen, until - length, until, bucket)


# ------------------------------------------------------------------------------------------ accounts


@dataclass(frozen=True, slots=True)
class AccountLine:
    """One account as the operator's list shows it."""

    id: int
    name: str
    api_username: str
    enabled: bool
    balance: int
    reserved: int
    last_activity: datetime | None

    @property
    def spendable(self) -> int:
        return self.balance - self.reserved


def account_lines(engine: Engine, last_activity: dict[int, datetime]) -> list[AccountLine]:
    """Every account, by name, with ``last_activity`` (account id → its newest ledger row's time)."""
    return [
        AccountLine(
            id=a.id,
            name=a.name,
            api_username=a.api_username,
            enabled=a.enabled,
            balance=a.balance,
            reserved=a.reserved,
            last_activity=last_activity.get(a.id),
        )
        for a in service.list_accounts(engine)
    ]


def refusal(exc: Exception) -> str | None:
    """The sentence a page shows for a service's refusal (what the admin API answers 400/404/409 with); else None."""
    if isinstance(exc, UnknownAccount):
        return f"There is no account named {exc.name!r}."
    if isinstance(exc, (NotFound, AccountConflict, BelowZero, AccountError, AllowListError, AmountError, LedgerError)):
        text = str(exc)
        return f"{text[:1].upper()}{text[1:]}."
    return None


def create_account(engine: Engine, name: str, credits: str) -> service.NewCredentials:
    """A new account with ``credits`` (an exact decimal; blank: none), everyone allowed, the server's prices.

    What ``numlookup accounts create NAME --credits X`` and ``POST
    /admin/v1/accounts`` do: the same checks, the initial credits booked through
    the ledger in the account's own transaction.
    """
    amount = parse_amount(credits) if credits.strip() else 0
    return service.create_account(engine, name, credits=amount)


def top_up(engine: Engine, name: str, amount: str, note: str) -> Charge:
    """A ``credit`` ledger row of ``amount`` (an exact decimal, above zero), with the operator's note if any."""
    micros = parse_amount(amount)
    if micros == 0:
        raise AmountError("a top-up must be more than zero")
    if "\x00" in note:
        raise AccountError("a note holds no NUL character")
    return service.top_up(engine, name, micros, note.strip() or None)


def account_named(engine: Engine, name: str) -> service.Account:
    return service.get_account(engine, name)


# What the accounts page says after a change it redirected from (``?done=…``): fixed words, never the query's.
DONE = {
    "top-up": "Credits added.",
    "disabled": "Account disabled: its API requests are refused from now on.",
    "enabled": "Account enabled.",
}


def set_enabled(engine: Engine, name: str, enabled: bool) -> service.Account:
    service.set_enabled(engine, name, enabled)
    return service.get_account(engine, name)


# ------------------------------------------------------------------------------------------ live sources


# One (day, source) row of ``source_usage``, as the live layer reads it (answer rate and margin included).
SourceDay = usage.DayUsage


@dataclass(frozen=True, slots=True)
class SourceNow:
    """What this worker knows of a configured source right now: its breaker, its requests, their latency."""

    name: str
    kind: str
    circuit: str  # closed, half-open, open
    requests: dict[str, int]  # by outcome: ok, error, rejected, backoff
    latency_count: int
    latency_sum: float  # seconds
    latency_p95: float | None  # the upper bound of the histogram bucket holding the 95th percentile; None: none

    @property
    def mean_ms(self) -> str:
        return "–" if not self.latency_count else f"{self.latency_sum / self.latency_count * 1000:.1f} ms"

    @property
    def p95_ms(self) -> str:
        if self.latency_p95 is None:
            return "–"
        if self.latency_p95 == float("inf"):
            return "> 10 s"
        return f"≤ {self.latency_p95 * 1000:g} ms"


def source_days(engine: Engine, days: int, today: date | None = None) -> list[SourceDay]:
    """The last ``days`` UTC days of ``source_usage`` (today included), newest day first."""
    since = (today or datetime.now(UTC).date()) - timedelta(days=days - 1)
    return usage.read(engine, since)


def source_totals(days: list[SourceDay]) -> list[SourceDay]:
    """Per source, the sum of ``days`` (``day`` is the earliest of them), by source name."""
    total: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * 6)
    first: dict[tuple[str, str], date] = {}
    for d in days:
        key = (d.source, d.currency)
        sums = total[key]
        for i, value in enumerate((d.queries, d.numbers, d.answered, d.failures, d.cost_micros, d.credits_micros)):
            sums[i] += value
        first[key] = min(first.get(key, d.day), d.day)
    return [
        SourceDay(first[key], key[0], key[1], *sums)  # the six sums, in field order
        for key, sums in sorted(total.items())
    ]


def _samples(metrics: Metrics, family: str) -> list[tuple[str, dict[str, str], float]]:
    """This process's samples of one metric family (its own registry: this worker's figures, not the node's)."""
    return [
        (sample.name, sample.labels, sample.value)
        for metric in metrics.registry.collect()
        if metric.name == family
        for sample in metric.samples
    ]


def source_kind(settings: Settings, name: str) -> str:
    """A source's kind as the settings name it: ``osmo-hlr``, or the upstream's ``kind`` (messente, infobip, …)."""
    upstream = settings.upstreams.get(name.removeprefix(UPSTREAM_PREFIX)) if name.startswith(UPSTREAM_PREFIX) else None
    return name if upstream is None else kind_of(upstream)


def sources_now(live: LiveService | None, metrics: Metrics, settings: Settings) -> list[SourceNow]:
    """Every configured live source, by name, as this worker sees it; empty when no route leads to one."""
    if live is None:
        return []
    requests: dict[str, dict[str, int]] = defaultdict(dict)
    for name, labels, value in _samples(metrics, "numlookup_live_source_requests"):
        if name.endswith("_total") and value:
            requests[labels["source"]][labels["outcome"]] = int(value)
    counts: dict[str, int] = {}
    sums: dict[str, float] = {}
    buckets: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for name, labels, value in _samples(metrics, "numlookup_live_source_latency_seconds"):
        source = labels["source"]
        if name.endswith("_count"):
            counts[source] = int(value)
        elif name.endswith("_sum"):
            sums[source] = value
        elif name.endswith("_bucket"):
            buckets[source].append((float(labels["le"]), int(value)))
    found = []
    for name in sorted(live.dispatchers):
        dispatcher = live.dispatchers[name]
        count = counts.get(name, 0)
        found.append(
            SourceNow(
                name=name,
                kind=source_kind(settings, name),
                circuit=CircuitState(dispatcher.breaker.state).name.lower().replace("_", "-"),
                requests=requests.get(name, {}),
                latency_count=count,
                latency_sum=sums.get(name, 0.0),
                latency_p95=_quantile_bound(sorted(buckets.get(name, [])), count, 95),
            )
        )
    return found


def _quantile_bound(buckets: list[tuple[float, int]], count: int, percent: int) -> float | None:
    """The smallest bucket bound at or below which ``percent`` per cent of ``count`` observations fell."""
    if not count:
        return None
    wanted = (count * percent + 99) // 100  # the rank of the percentile, rounded up
    return next((bound for bound, cumulative in buckets if cumulative >= wanted), float("inf"))


# ------------------------------------------------------------------------------------------ data


def dataset_versions(engine: Engine) -> list[catalog.DatasetVersion]:
    """Every imported dataset version, newest import first."""
    return sorted(catalog.all_versions(engine), key=lambda v: (v.imported_at, v.kind, v.version), reverse=True)


@dataclass(frozen=True, slots=True)
class CountryCoverage:
    """One region's share of libphonenumber's named mobile carrier prefixes that resolve to an MCC/MNC."""

    region: str
    country: str
    prefixes: int
    mapped_prefixes: int
    numbers: int
    mapped_numbers: int
    unmapped: tuple[str, ...]  # carrier names left without an MCC/MNC, most numbers first

    @property
    def share(self) -> str:
        if not self.numbers:
            return "100.0%"
        tenths = (2000 * self.mapped_numbers + self.numbers) // (2 * self.numbers)
        return f"{tenths // 10}.{tenths % 10}%"


@dataclass(frozen=True, slots=True)
class CoverageTable:
    """``numlookup data coverage``'s first table (named prefixes), by region, with the total."""

    regions: tuple[CountryCoverage, ...]
    total: CountryCoverage


def coverage_table() -> CoverageTable:
    """Compute the coverage table (seconds of CPU): a module function, so a worker's CPU process can run it."""
    from numlookup.numbering import coverage
    from numlookup.numbering.countries import country_for_region
    from numlookup.numbering.networks import NetworkRegistry

    report = coverage.coverage(NetworkRegistry.shipped())

    def line(region: str, country: str, r: coverage.RegionCoverage | coverage.CoverageReport) -> CountryCoverage:
        unmapped = tuple(name for name, _ in r.unmapped) if isinstance(r, coverage.RegionCoverage) else ()
        return CountryCoverage(region, country, r.prefixes, r.mapped_prefixes, r.numbers, r.mapped_numbers, unmapped)

    return CoverageTable(
        regions=tuple(line(r.region, country_for_region(r.region).name, r) for r in report.regions),
        total=line("", "All regions", report),
    )


class CoverageCache:
    """The coverage table, computed once per process on first demand, never per request.

    It depends only on the shipped data, which a process never changes, and costs
    seconds of CPU: :meth:`get` answers at once with the table or with None
    ("being computed"), and the first call starts the computation through
    ``compute`` (the route passes its worker's CPU process, so the event loop's
    interpreter lock stays free for lookups).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._table: CoverageTable | None = None
        self._started = False
        self.error: str | None = None

    def get(self) -> CoverageTable | None:
        return self._table

    def claim(self) -> bool:
        """True for the one caller that should compute the table (the first, or the first after a failure)."""
        with self._lock:
            if self._started or self._table is not None:
                return False
            self._started = True
            return True

    def done(self, table: CoverageTable) -> None:
        self._table = table
        self.error = None

    def failed(self, error: str) -> None:
        with self._lock:
            self._started = False
            self.error = error


COVERAGE = CoverageCache()


def money(micros: int) -> str:
    """Micro-credits as the exact decimal the CLI prints."""
    return format_amount(micros)


# ------------------------------------------------------------------------------------------ nodes


@dataclass(frozen=True, slots=True)
class NodeLine:
    """One server worker seen lately, and whether its heartbeat is stale; ``this``: the worker answering now."""

    node_id: str
    host: str
    pid: int
    version: str
    started_at: datetime
    last_seen: datetime
    ready: bool
    requests: int
    stale: bool
    this: bool


def node_lines(found: Sequence[Node], now: datetime, host: str, pid: int) -> list[NodeLine]:
    """``found`` (``store.nodes.recent_nodes``) as lines, freshest first; ``host``, ``pid``: this worker."""
    lines = [
        NodeLine(
            node_id=n.node_id,
            host=n.host,
            pid=n.pid,
            version=n.version,
            started_at=n.started_at,
            last_seen=n.last_seen,
            ready=bool(n.ready),
            requests=int(n.requests),
            stale=now - n.last_seen > STALE_AFTER,  # the heartbeat's own rule
            this=(n.host, n.pid) == (host, pid),
        )
        for n in found
    ]
    return sorted(lines, key=lambda n: (n.last_seen, n.node_id), reverse=True)
