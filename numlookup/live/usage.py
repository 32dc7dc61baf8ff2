"""What each live source did and cost, per day: counted in memory, stored with commits already being made.

Why: an operator who resells a provider's lookups must see, per source and day,
how many queries went out, how many numbers it answered, how often it failed,
what the provider charges for that and what customers were charged for those
answers: the margin. Each worker counts in memory (``UsageCounter``) and the
counts go into the database inside transactions the worker commits anyway: the
group commit of the requests' charges (with their fresh live answers), and the
background write of late answers. No request pays for an extra commit; a worker
with counts but no traffic flushes them in the background every
``FLUSH_SECONDS``. Counts are added to the day's row (an upsert of increments),
so several workers and nodes add up.

Amounts are exact: the provider's ``cost`` per number, a decimal in its
currency, is kept as integer millionths of that currency (as credits are micro-credits).
A count leaves memory only once the transaction that stored it has committed:
``take`` hands out a snapshot and ``commit`` removes it afterwards; a failed
transaction leaves it to the next one.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from sqlalchemy import Connection, Dialect, Engine, select

from numlookup.store.driver_rows import DriverRows, per_dialect
from numlookup.store.tables import source_usage
from numlookup.store.upsert import UPSERT_DIALECTS, upsert

FLUSH_SECONDS = 10.0
_COUNTS = ("queries", "numbers", "answered", "failures", "cost_micros", "credits_micros")
_COLUMNS = ("day", "source", "currency", *_COUNTS)


@dataclass(slots=True)
class Counts:
    """One source's figures for one day."""

    queries: int = 0  # requests sent to the source (one per batch)
    numbers: int = 0  # numbers those requests asked about
    answered: int = 0  # numbers the source answered with something a client pays for
    failures: int = 0  # requests that failed as a whole (refused, timed out, 5xx, 429, credentials, …)
    cost_micros: int = 0  # what the provider charges for them, in millionths of ``currency``
    credits_micros: int = 0  # what customers were charged for the answers this source gave

    def add(self, other: Counts) -> None:
        # Field by field, not by name: a charge commit adds one request's credits per request it carries.
        self.queries += other.queries
        self.numbers += other.numbers
        self.answered += other.answered
        self.failures += other.failures
        self.cost_micros += other.cost_micros
        self.credits_micros += other.credits_micros

    def subtract(self, other: Counts) -> None:
        self.queries -= other.queries
        self.numbers -= other.numbers
        self.answered -= other.answered
        self.failures -= other.failures
        self.cost_micros -= other.cost_micros
        self.credits_micros -= other.credits_micros

    def __bool__(self) -> bool:
        return any(getattr(self, name) for name in _COUNTS)


@dataclass(frozen=True, slots=True)
class Pricing:
    """What a source's provider charges per number asked: millionths of ``currency``."""

    cost_micros: int = 0
    currency: str = ""


Key = tuple[date, str]  # (UTC day, source name)


@dataclass
class UsageCounter:
    """The counts of this worker not yet stored, by (day, source).

    Counted on the event loop, taken and committed from the thread that runs the
    storing transaction: a lock keeps the two apart (held for microseconds).
    """

    pricing: Mapping[str, Pricing] = field(default_factory=dict)
    pending: dict[Key, Counts] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _counts(self, source: str, now: datetime | None) -> Counts:
        key = ((now or datetime.now(UTC)).date(), source)
        counts = self.pending.get(key)
        if counts is None:
            counts = self.pending[key] = Counts()
        return counts

    def request(
        self,
        source: str,
        numbers: int,
        answered: int,
        failed: bool,
        now: datetime | None = None,
        cost_micros: int | None = None,
    ) -> None:
        """One request to ``source`` about ``numbers`` numbers; the provider charges for those it answered.

        ``cost_micros``: what the provider said the request cost, when its answers
        state it; otherwise ``answered`` × the source's configured cost.
        """
        with self._lock:
            counts = self._counts(source, now)
            counts.queries += 1
            counts.numbers += numbers
            if failed:
                counts.failures += 1
            else:
                counts.answered += answered
                if cost_micros is None:
                    cost_micros = answered * self.pricing.get(source, Pricing()).cost_micros
                counts.cost_micros += cost_micros

    def take(self) -> dict[Key, Counts]:
        """A snapshot of what is pending; ``commit`` it once the transaction that stored it has committed."""
        with self._lock:
            return {key: _copy(c) for key, c in self.pending.items() if c}

    def commit(self, taken: Mapping[Key, Counts]) -> None:
        with self._lock:
            for key, counts in taken.items():
                pending = self.pending.get(key)
                if pending is not None:
                    pending.subtract(counts)
                    if not pending:
                        del self.pending[key]

    def __bool__(self) -> bool:
        with self._lock:
            return any(self.pending.values())


def merged(*parts: Mapping[Key, Counts]) -> dict[Key, Counts]:
    """The sum of several snapshots, by key."""
    total: dict[Key, Counts] = {}
    for part in parts:
        for key, counts in part.items():
            total.setdefault(key, Counts()).add(counts)
    return total


def _copy(counts: Counts) -> Counts:
    return Counts(**{name: getattr(counts, name) for name in _COUNTS})


def _increments(dialect: Dialect) -> DriverRows:
    """The day rows' upsert of increments, compiled once per dialect (``store.driver_rows``).

    Why: it runs in every charge commit, on the charges' thread, and building and
    compiling the statement each time took about 3 ms there (most of a commit's
    Python), with the event loop's GIL held.
    """
    insert = upsert(dialect.name, source_usage)
    increments = {name: source_usage.c[name] + insert.excluded[name] for name in _COUNTS}
    statement = insert.on_conflict_do_update(
        index_elements=["day", "source"], set_={**increments, "currency": insert.excluded.currency}
    )
    return DriverRows(statement, source_usage, _COLUMNS, dialect)


_increments_of = per_dialect(_increments)


def store(conn: Connection, taken: Mapping[Key, Counts], pricing: Mapping[str, Pricing]) -> None:
    """Add ``taken`` to the day rows inside the caller's transaction (an upsert of increments)."""
    if not taken:
        return
    rows = [
        {
            "day": day,
            "source": source,
            "currency": pricing.get(source, Pricing()).currency,
            **{name: getattr(counts, name) for name in _COUNTS},
        }
        for (day, source), counts in sorted(taken.items())
    ]
    if conn.dialect.name in UPSERT_DIALECTS:
        compiled = _increments_of(conn.dialect)
        compiled.run(conn, compiled.processed(rows))
        return
    for row in rows:  # any other SQL database: read, then write
        found = conn.execute(
            select(source_usage).where(source_usage.c.day == row["day"], source_usage.c.source == row["source"])
        ).first()
        if found is None:
            conn.execute(source_usage.insert().values(**row))
        else:
            values = {name: getattr(found, name) + row[name] for name in _COUNTS}
            conn.execute(
                source_usage.update()
                .where(source_usage.c.day == row["day"], source_usage.c.source == row["source"])
                .values(currency=row["currency"], **values)
            )


@dataclass(frozen=True, slots=True)
class DayUsage:
    """One (day, source) row of ``source_usage``: what the source did, what it cost, what customers paid."""

    day: date
    source: str
    currency: str
    queries: int
    numbers: int
    answered: int
    failures: int
    cost_micros: int
    credits_micros: int

    @property
    def answer_rate(self) -> str:
        """Numbers answered of numbers asked, to a tenth of a per cent (computed in integers: exact rounding)."""
        if not self.numbers:
            return "–"
        tenths = (2000 * self.answered + self.numbers) // (2 * self.numbers)
        return f"{tenths // 10}.{tenths % 10}%"

    @property
    def margin_micros(self) -> int:
        """Credits charged less the provider's cost, one credit taken as one unit of the source's currency."""
        return self.credits_micros - self.cost_micros


def read(engine: Engine, since: date) -> list[DayUsage]:
    """Every (day, source) row from ``since`` on, newest day first."""
    query = (
        select(source_usage)
        .where(source_usage.c.day >= since)
        .order_by(source_usage.c.day.desc(), source_usage.c.source)
    )
    with engine.connect() as conn:
        return [
            DayUsage(
                day=row.day,
                source=row.source,
                currency=row.currency,
                **{name: int(getattr(row, name)) for name in _COUNTS},
            )
            for row in conn.execute(query)
        ]
