"""The live-answer cache in the database, shared by every worker process.

Reads are one primary-key ``SELECT … IN``; on a SQLite file it runs on the
calling thread, the event loop's, straight through ``sqlite3`` (``read_here``,
see ``_HereRead`` for why), elsewhere in a thread through SQLAlchemy. A request stores the live answers it
serves inside its own charge transaction, so once a 200 has left, every later
request (in any worker) sees them, at no extra commit. Answers nobody was
waiting for any more (they came after a request's deadline) are written by
``CacheWriter`` in the background, grouped: whatever arrives while a write runs
goes into the next one, because on SQLite every transaction is a trip through
the one writer lock and an fsync.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
from sqlalchemy import Connection, Dialect, Engine, bindparam, delete, insert, select

from numlookup.live.source import LiveAnswer
from numlookup.store.driver_rows import DriverRows, per_dialect
from numlookup.store.engine import write_transaction
from numlookup.store.tables import live_cache
from numlookup.store.upsert import UPSERT_DIALECTS, upsert

log = logging.getLogger("numlookup.live")

# The columns of a stored row, in the order the upsert binds them.
_COLUMNS = tuple(c.name for c in live_cache.columns)

# The read, built once with bound parameters (as the ledger's statements, billing/ledger.py): building a
# ``SELECT … IN`` per read and deriving its cache key cost more than SQLAlchemy's compiled cache saved.
_READ = select(live_cache).where(
    live_cache.c.number.in_(bindparam("numbers", expanding=True)),
    live_cache.c.network_checked_at >= bindparam("oldest", type_=live_cache.c.network_checked_at.type),
)


class _Upsert(DriverRows):
    """The live cache's upsert of one dialect, compiled once, run through the driver (``store.driver_rows``).

    Why not ``conn.execute(statement, rows)``: SQLAlchemy builds each row's
    parameters anew, about 28 µs per row, a thousand rows per burst on the
    charges' thread, which holds the event loop's GIL meanwhile.
    tests/live/test_breaker_router_cache.py proves it stores exactly what
    ``insert(live_cache)`` stores.
    """

    def __init__(self, dialect: Dialect) -> None:
        statement = upsert(dialect.name, live_cache)
        excluded = {c: statement.excluded[c] for c in _COLUMNS if c != "number"}
        conflict = statement.on_conflict_do_update(index_elements=["number"], set_=excluded)
        super().__init__(conflict, live_cache, _COLUMNS, dialect)

    def processed(self, rows: Sequence[Mapping[str, object]]) -> list[tuple[object, ...]]:
        """Each row's values in bind order, through their type processors; each value object processed once.

        Each value object is processed once: a burst's rows share them (a batch's
        answers one ``checked_at``, which is also their ``network_checked_at``;
        the booleans), and the datetime processors were most of this function's
        time (13 ms of a 1,000-row upsert). A processor is a pure function of its
        value, and the rows keep every object alive, so an ``id`` names one value
        for the whole call.
        """
        steps = list(zip(self.order, self.processors, strict=True))
        done: dict[tuple[str, int], object] = {}
        processed: list[tuple[object, ...]] = []
        for row in rows:
            values = []
            for name, process in steps:
                value = row[name]
                if process is not None and value is not None:
                    key = (name, id(value))
                    if key in done:
                        value = done[key]
                    else:
                        value = done[key] = process(value)
                values.append(value)
            processed.append(tuple(values))
        return processed


_upsert_of = per_dialect(_Upsert)

# The read ``_READ`` makes, written for ``sqlite3``: the same columns, in the same order.
_HERE_SQL = f"SELECT {', '.join(_COLUMNS)} FROM live_cache WHERE number IN ({{}}) AND network_checked_at >= ?"


class _HereRead:
    """The cache read of a SQLite file on the calling thread (the event loop's), through ``sqlite3``.

    Why: in a thread, the read was short but its way back was not. Under a
    burst (bench/live.py, timed per request) the reader thread's few
    milliseconds of SELECT took 10 to 30 ms of wall time handing the GIL to and
    from the busy event loop, and its result then waited 20 to 80 ms for the
    loop to run the callback that settles the requests' futures; since one
    read runs at a time (``live.reads``), every request that arrived meanwhile
    waited for both before any source was asked. Here the SELECT is a call into
    SQLite's C code on the loop: a primary-key probe per number (microseconds
    each, the table's pages in SQLite's and the kernel's caches) and the rows
    put through the same type processors SQLAlchemy applies (``UTCDateTime``,
    SQLite's booleans), so a row reads back exactly as ``LiveCache.read``
    returns it (tests/live/test_breaker_router_cache.py holds the two equal).
    Measured alone (bench/live_cache_read.py), one request's hit took 25 µs
    instead of 226, a read of 800 misses 225 µs instead of 908.

    The loop must never wait on a lock: the connection has no busy timeout, and
    a read SQLite refuses at once (a writer holding the file exclusively; in WAL
    mode readers do not wait for writers otherwise) returns None, and the
    caller reads in a thread as before. The connection is read-only
    (``query_only``), in autocommit (a SELECT is its own read transaction: no
    BEGIN or ROLLBACK round trip), and used by the thread that opened it only.
    """

    def __init__(self, database: str, dialect: Dialect) -> None:
        self.database = database
        types = {c.name: c.type.dialect_impl(dialect) for c in live_cache.columns}
        self._results = [(i, p) for i, n in enumerate(_COLUMNS) if (p := types[n].result_processor(dialect, None))]
        self._oldest = types["network_checked_at"].bind_processor(dialect)
        self._sql: dict[int, str] = {}
        self._conn: sqlite3.Connection | None = None

    def rows(self, numbers: Sequence[str], oldest: datetime) -> list[list[object]] | None:
        """The stored rows of ``numbers`` whose porting facts are newer than ``oldest``; None if SQLite refused."""
        try:
            conn = self._conn
            if conn is None:
                conn = self._conn = sqlite3.connect(self.database, timeout=0, isolation_level=None)
                conn.execute("PRAGMA query_only=ON")
            sql = self._sql.get(len(numbers))
            if sql is None:
                sql = self._sql[len(numbers)] = _HERE_SQL.format(", ".join("?" * len(numbers)))
            bound = self._oldest(oldest) if self._oldest is not None else oldest
            fetched = conn.execute(sql, (*numbers, bound)).fetchall()
        except sqlite3.Error:  # locked, or not ours to use on this thread: the thread's read decides
            return None
        rows = []
        for values in fetched:
            row = list(values)
            for i, process in self._results:
                row[i] = process(row[i])
            rows.append(row)
        return rows

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except sqlite3.Error:  # another thread's: it goes with that thread's objects
                pass
            self._conn = None


def _cached(row: Sequence[Any]) -> CachedAnswer:
    """A stored row (its values in ``_COLUMNS`` order, as SQLAlchemy returns them) as a ``CachedAnswer``."""
    column = dict(zip(_COLUMNS, row, strict=True))
    return CachedAnswer(
        source=column["source"],
        answer=LiveAnswer(
            number=column["number"],
            reachable=column["reachable"],
            roaming=column["roaming"],
            roaming_mccmnc=column["roaming_mccmnc"],
            roaming_gt=column["roaming_gt"],
            ported_mccmnc=column["ported_mccmnc"],
            checked_at=column["checked_at"],
            invalid=bool(column["invalid"]),
            ported_known=column["ported_known"],
            ported_name=column["ported_name"],
            ported_country=column["ported_country"],
            roaming_name=column["roaming_name"],
            roaming_country=column["roaming_country"],
        ),
        checked_at=column["checked_at"],
        network_checked_at=column["network_checked_at"],
    )


@dataclass(frozen=True, slots=True)
class CachedAnswer:
    """A stored live answer; ``checked_at`` dates reachability/roaming, ``network_checked_at`` porting."""

    source: str
    answer: LiveAnswer
    checked_at: datetime
    network_checked_at: datetime


class LiveCache:
    def __init__(self, engine: Engine, ttl_reachability: float, ttl_network: float) -> None:
        self.engine = engine
        self.ttl_reachability = timedelta(seconds=ttl_reachability)
        self.ttl_network = timedelta(seconds=ttl_network)
        database = engine.url.database
        here = engine.dialect.name == "sqlite" and database is not None and os.path.isfile(database)
        self._here = _HereRead(database, engine.dialect) if here and database is not None else None

    def read(self, numbers: Sequence[str], now: datetime) -> dict[str, CachedAnswer]:
        """Rows whose porting facts are still within their TTL; the caller judges reachability age."""
        if not numbers:
            return {}
        oldest = now - self.ttl_network
        with self.engine.connect() as conn:
            rows = conn.execute(_READ, {"numbers": list(numbers), "oldest": oldest}).all()
        return {row.number: _cached(row) for row in rows}

    def read_here(self, numbers: Sequence[str], now: datetime) -> dict[str, CachedAnswer] | None:
        """``read`` on the calling thread, for a SQLite file (``_HereRead``); None where it must run in a thread."""
        if self._here is None:
            return None
        if not numbers:
            return {}
        rows = self._here.rows(numbers, now - self.ttl_network)
        if rows is None:
            return None
        return {answer.answer.number: answer for answer in map(_cached, rows)}

    def close(self) -> None:
        """Close the connection ``read_here`` opened (on the thread that used it)."""
        if self._here is not None:
            self._here.close()

    def fresh(self, cached: CachedAnswer, now: datetime, max_age: float | None) -> bool:
        """Is the answer young enough for this request?

        An answer that knows reachability (or that the number is out of service)
        ages with the reachability TTL; one that tells porting only (ENUM) with
        the porting TTL, since that is all it ever says.
        """
        answer = cached.answer
        reachability = answer.reachable is not None or answer.invalid
        limit = self.ttl_reachability if reachability else self.ttl_network
        if max_age is not None:
            limit = min(limit, timedelta(seconds=max_age))
        return now - (cached.checked_at if reachability else cached.network_checked_at) <= limit

    def write(self, rows: Iterable[tuple[str, LiveAnswer]], now: datetime) -> None:
        """Upsert answers that say something (``(source, answer)`` pairs); one transaction."""
        values = self.values(rows, now)
        if values:
            with write_transaction(self.engine) as conn:
                self.upsert(conn, values)

    @staticmethod
    def values(rows: Iterable[tuple[str, LiveAnswer]], now: datetime) -> list[dict[str, object]]:
        """The rows to store: only answers that say something ("could not tell" is no fact worth keeping)."""
        values: dict[str, dict[str, object]] = {}
        for source, answer in rows:
            if not answer.says_something:
                continue
            checked = answer.checked_at or now
            values[answer.number] = {
                "number": answer.number,
                "source": source,
                "reachable": answer.reachable,
                "roaming": answer.roaming,
                "roaming_mccmnc": answer.roaming_mccmnc,
                "roaming_gt": answer.roaming_gt,
                "ported_mccmnc": answer.ported_mccmnc,
                "checked_at": checked,
                "network_checked_at": checked,
                "invalid": answer.invalid,
                "ported_known": answer.ported_known,
                "ported_name": answer.ported_name,
                "ported_country": answer.ported_country,
                "roaming_name": answer.roaming_name,
                "roaming_country": answer.roaming_country,
            }
        return list(values.values())

    def upsert(self, conn: Connection, values: list[dict[str, object]]) -> None:
        """Insert or replace ``values`` inside the caller's write transaction.

        A batch may hold one number twice (two requests of one group commit): the
        later row wins, and PostgreSQL refuses to upsert one key twice in a statement.
        """
        if not values:
            return
        values = list({v["number"]: v for v in values}.values())
        if conn.dialect.name in UPSERT_DIALECTS:
            compiled = _upsert_of(conn.dialect)
            compiled.run(conn, compiled.processed(values))
        else:  # any other SQL database: replace the rows
            conn.execute(delete(live_cache).where(live_cache.c.number.in_([v["number"] for v in values])))
            conn.execute(insert(live_cache), values)

    def prune(self, now: datetime) -> int:
        """Drop rows whose every field class has expired."""
        with write_transaction(self.engine) as conn:
            return conn.execute(
                delete(live_cache).where(live_cache.c.network_checked_at < now - self.ttl_network)
            ).rowcount


class CacheWriter:
    """Group commit for cache writes: one transaction carries every answer that queued meanwhile."""

    PRUNE_EVERY = timedelta(hours=1)

    def __init__(self, cache: LiveCache) -> None:
        self.cache = cache
        self._pending: list[tuple[str, LiveAnswer]] = []
        self._task: asyncio.Task[None] | None = None
        self._pruned = datetime.now(UTC)

    def put(self, rows: Sequence[tuple[str, LiveAnswer]]) -> None:
        """Queue rows for the next group commit and return at once.

        A failed write is logged, not raised: the cache is an optimisation.
        """
        if not rows:
            return
        self._pending.extend(rows)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())

    async def flush(self) -> None:
        """Wait until everything queued so far is written (shutdown, tests)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _drain(self) -> None:
        while self._pending:
            rows, self._pending = self._pending, []
            now = datetime.now(UTC)
            try:
                await anyio.to_thread.run_sync(self.cache.write, rows, now)
                if now - self._pruned > self.PRUNE_EVERY:
                    self._pruned = now
                    await anyio.to_thread.run_sync(self.cache.prune, now)
            except Exception:  # a failed cache write must not fail lookups
                log.exception("live cache write failed (%d rows)", len(rows))
