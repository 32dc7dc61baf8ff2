"""The breaker's state machine, routing rules and the database cache (real SQLite)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, event, insert, select

from numlookup.live.breaker import CircuitBreaker, CircuitState
from numlookup.live.cache import LiveCache
from numlookup.live.reads import CoalescedReads
from numlookup.live.router import Router
from numlookup.live.source import LiveAnswer
from numlookup.numbering import Resolver
from numlookup.settings import SettingsError, load_settings
from numlookup.store import make_engine, upgrade
from numlookup.store.engine import write_transaction
from numlookup.store.tables import live_cache
from tests.support import BACKEND, database_url


class Clock:
    """A settable clock: the breaker's timing without sleeping."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


sqlite_only = pytest.mark.skipif(BACKEND != "sqlite", reason="the read on the loop is SQLite's")


def state_of(breaker: CircuitBreaker) -> CircuitState:
    return breaker.state


def test_breaker_opens_after_consecutive_failures_and_half_opens_for_one_probe() -> None:
    clock = Clock()
    seen: list[CircuitState] = []
    breaker = CircuitBreaker("s", failures=3, reset_seconds=10, clock=clock, on_change=lambda _n, s: seen.append(s))
    breaker.failure()
    breaker.failure()
    breaker.success()  # the count is of consecutive failures
    for _ in range(3):
        assert breaker.allow()
        breaker.failure()
    assert breaker.state is CircuitState.OPEN and not breaker.allow()
    clock.now = 10
    assert state_of(breaker) is CircuitState.HALF_OPEN  # the clock moved: read the property afresh
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.failure()  # the probe failed: open again, for another period
    assert state_of(breaker) is CircuitState.OPEN
    clock.now = 20
    assert breaker.allow()
    breaker.success()
    assert state_of(breaker) is CircuitState.CLOSED and breaker.allow()
    assert seen == [
        CircuitState.OPEN,
        CircuitState.HALF_OPEN,
        CircuitState.OPEN,
        CircuitState.HALF_OPEN,
        CircuitState.CLOSED,
    ]


def test_routes_first_match_wins(tmp_path: Path) -> None:
    config = tmp_path / "n.toml"
    config.write_text(
        """
live_routes = [
  {match = "prefix:3725100", source = "offline"},
  {match = "cc:372", source = "ee"},
  {match = "mccmnc:26201", source = "upstream:de"},
]
[upstreams.ee]
url = "http://127.0.0.1:1/v1"
username = "u"
password = "p"
[upstreams.de]
url = "http://127.0.0.1:2/v1"
username = "u"
password = "p"
max_batch = 5
"""
    )
    settings = load_settings(str(config), environ={})
    assert settings.upstreams["de"].max_batch == 5
    router = Router.from_settings(settings)
    assert router.sources == {"upstream:ee", "upstream:de"}
    resolver = Resolver()
    numbers = ["+37251000001", "+37255512345", "+4915112345678", "+4917212345678", "+447712345678", "nonsense"]
    assert [router.route(r) for r in resolver.resolve(numbers)] == [
        (),
        ("upstream:ee",),
        ("upstream:de",),
        (),
        (),
        (),
    ]


@pytest.mark.parametrize(
    "routes",
    [
        '[{"match": "cc:372", "source": "nowhere"}]',
        '[{"match": "country:372", "source": "offline"}]',
        '[{"match": "cc:372", "source": "osmo-hlr"}]',
    ],
)
def test_bad_routes_are_refused(routes: str) -> None:
    with pytest.raises(SettingsError):
        load_settings(environ={"NUMLOOKUP_LIVE_ROUTES": routes})


def test_cache_upserts_and_judges_age_per_field_class(tmp_path: Path) -> None:
    engine = make_engine(database_url(tmp_path / "db"))
    upgrade(engine)
    cache = LiveCache(engine, ttl_reachability=300, ttl_network=3600)
    now = datetime.now(UTC)
    old = now - timedelta(seconds=600)
    cache.write(
        [
            (
                "upstream:a",
                LiveAnswer("+1", True, roaming=True, roaming_mccmnc="24405", ported_mccmnc="24803", checked_at=old),
            ),
            ("upstream:a", LiveAnswer("+2", None, error="could not tell")),
        ],
        now,
    )
    rows = cache.read(["+1", "+2", "+3"], now)
    assert set(rows) == {"+1"}  # "could not tell" is not stored
    assert rows["+1"].checked_at == old and rows["+1"].answer.roaming_mccmnc == "24405"
    assert not cache.fresh(rows["+1"], now, None)  # reachability expired, porting still usable
    cache.write([("osmo-hlr", LiveAnswer("+1", False, checked_at=now))], now)
    [row] = cache.read(["+1"], now).values()
    assert row.source == "osmo-hlr" and row.answer.reachable is False and cache.fresh(row, now, None)
    assert cache.fresh(row, now + timedelta(seconds=5), 10) and not cache.fresh(row, now + timedelta(seconds=5), 1)
    assert cache.read(["+1"], now + timedelta(seconds=3601)) == {}
    assert cache.prune(now + timedelta(seconds=3601)) == 1
    engine.dispose()


def test_cache_upsert_through_the_driver_stores_what_sqlalchemy_stores(tmp_path: Path) -> None:
    """The upsert's own parameters (LiveCache.upsert) against ``insert(live_cache)``: the same stored values."""
    engine = make_engine(database_url(tmp_path / "db"))
    upgrade(engine)
    cache = LiveCache(engine, ttl_reachability=300, ttl_network=3600)
    plus_two = timezone(timedelta(hours=2))
    now = datetime.now(UTC)
    answers = [
        LiveAnswer("+10", True, roaming=True, roaming_mccmnc="24405", roaming_gt="358401234567", ported_mccmnc="24803"),
        LiveAnswer("+11", False, checked_at=datetime(2026, 3, 4, 5, 6, 7, 89, tzinfo=plus_two)),
        LiveAnswer("+12", None, ported_mccmnc="20404", ported_known=True, ported_name="Ned", ported_country="31"),
        LiveAnswer("+13", None, invalid=True, roaming_name="Roam", roaming_country="44", roaming=False),
    ]
    values = cache.values([("upstream:a", a) for a in answers], now)
    mirrored = [{**v, "number": "+2" + str(v["number"])[1:]} for v in values]
    with write_transaction(engine) as conn:
        cache.upsert(conn, values)
        conn.execute(insert(live_cache), mirrored)

    def stored(prefix: str) -> list[tuple[Any, ...]]:
        with engine.connect() as conn:
            raw = conn.exec_driver_sql("SELECT * FROM live_cache ORDER BY number").all()  # as the database holds them
            typed = conn.execute(select(live_cache).order_by(live_cache.c.number)).all()
        return [(*r[1:],) for r in raw if r[0].startswith(prefix)] + [
            (*r[1:],) for r in typed if r[0].startswith(prefix)
        ]

    assert stored("+1") == stored("+2") and len(stored("+1")) == 8
    # An upsert over existing rows replaces every column, in the same form.
    again = cache.values([("osmo-hlr", LiveAnswer(a.number, True, checked_at=now)) for a in answers], now)
    with write_transaction(engine) as conn:
        cache.upsert(conn, again)
        conn.execute(delete(live_cache).where(live_cache.c.number.like("+2%")))
        conn.execute(insert(live_cache), [{**v, "number": "+2" + str(v["number"])[1:]} for v in again])
    assert stored("+1") == stored("+2")
    assert {row.source for row in cache.read([a.number for a in answers], now).values()} == {"osmo-hlr"}
    engine.dispose()


def test_reads_asked_while_one_runs_share_the_next_select(tmp_path: Path) -> None:
    """One read at a time: the requests of later loop turns wait for it and then go in one SELECT together."""
    engine = make_engine(database_url(tmp_path / "db"))
    upgrade(engine)
    cache = LiveCache(engine, ttl_reachability=300, ttl_network=3600)
    now = datetime.now(UTC)
    stored = [f"+37251{i:06d}" for i in range(0, 12, 2)]
    cache.write([("upstream:a", LiveAnswer(n, True, checked_at=now)) for n in stored], now)
    asked = [[f"+37251{i:06d}", f"+37251{i + 6:06d}"] for i in range(6)]
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    held = threading.Event()
    with ThreadPoolExecutor(max_workers=1) as executor:
        executor.submit(held.wait, 60)  # the reader thread is busy: the first read stays in flight
        reads = CoalescedReads(cache, executor)

        async def turns() -> list[dict[str, Any]]:
            first = reads.read(asked[0])
            await asyncio.sleep(0)  # the first read has started
            later = []
            for numbers in asked[1:]:  # one request per loop turn while the first read runs
                later.append(reads.read(numbers))
                await asyncio.sleep(0)
            held.set()
            return [await first, *[await future for future in later]]

        found = asyncio.run(turns())
    assert (reads.reads, reads.requests) == (2, len(asked))
    assert sum("FROM live_cache" in s for s in statements) == 2
    for numbers, rows in zip(asked, found, strict=True):
        assert {n for n in numbers if n in rows} == {n for n in numbers if int(n[-6:]) % 2 == 0}
    engine.dispose()


def test_reads_of_one_loop_turn_share_one_select(tmp_path: Path) -> None:
    engine = make_engine(database_url(tmp_path / "db"))
    upgrade(engine)
    cache = LiveCache(engine, ttl_reachability=300, ttl_network=3600)
    now = datetime.now(UTC)
    stored = [f"+37251{i:06d}" for i in range(0, 1200, 2)]  # more than one SELECT chunk is asked for below
    cache.write([("upstream:a", LiveAnswer(n, True, checked_at=now)) for n in stored], now)
    asked = [[f"+37251{i:06d}" for i in range(j, 1200, 7)] for j in range(7)]
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    with ThreadPoolExecutor(max_workers=1) as executor:
        reads = CoalescedReads(cache, executor)

        async def turn() -> list[dict[str, Any]]:
            return list(await asyncio.gather(*(reads.read(numbers) for numbers in asked)))

        found = asyncio.run(turn())
    assert (reads.reads, reads.requests) == (1, len(asked))
    assert sum("FROM live_cache" in s for s in statements) == 3  # 1,200 distinct numbers, 500 per SELECT
    for numbers, rows in zip(asked, found, strict=True):
        assert {n for n in numbers if n in rows} == {n for n in numbers if int(n[-6:]) % 2 == 0}
    engine.dispose()


def _stored_for_reads(cache: LiveCache, now: datetime) -> list[str]:
    """Rows of every shape the cache stores (booleans, None, names, an offset time, an expired one); their numbers."""
    plus_two = timezone(timedelta(hours=2))
    answers = [
        LiveAnswer("+10", True, roaming=True, roaming_mccmnc="24405", roaming_gt="358401234567", ported_mccmnc="24803"),
        LiveAnswer("+11", False, checked_at=datetime(2026, 3, 4, 5, 6, 7, 89, tzinfo=plus_two)),
        LiveAnswer("+12", None, ported_mccmnc="20404", ported_known=True, ported_name="Ned", ported_country="31"),
        LiveAnswer("+13", None, invalid=True, roaming_name="Roam", roaming_country="44", roaming=False),
        LiveAnswer("+14", True, checked_at=now - timedelta(seconds=600)),
        LiveAnswer("+15", True, checked_at=now - timedelta(seconds=7200)),  # older than the porting TTL
    ]
    cache.write([("upstream:a", a) for a in answers], now)
    return [a.number for a in answers] + ["+16"]  # and one never stored


@sqlite_only
def test_the_read_on_the_loop_returns_what_the_sqlalchemy_read_returns(tmp_path: Path) -> None:
    """``read_here`` (sqlite3, the loop's thread) against ``read`` (SQLAlchemy): the same answers, field by field."""
    engine = make_engine(database_url(tmp_path / "db"))
    upgrade(engine)
    cache = LiveCache(engine, ttl_reachability=300, ttl_network=3600)
    now = datetime.now(UTC)
    numbers = _stored_for_reads(cache, now)
    for at in (now, now + timedelta(seconds=1800), now + timedelta(days=1)):
        here = cache.read_here(numbers, at)
        assert here == cache.read(numbers, at)
        assert here is not None and all(type(a.checked_at) is datetime and a.checked_at.tzinfo for a in here.values())
    assert set(cache.read_here(numbers, now) or {}) == {"+10", "+12", "+13", "+14"}  # it read rows
    assert cache.read_here([], now) == {}
    cache.close()
    engine.dispose()


@sqlite_only
def test_reads_of_one_loop_turn_run_on_the_loop_without_a_thread(tmp_path: Path) -> None:
    engine = make_engine(database_url(tmp_path / "db"))
    upgrade(engine)
    cache = LiveCache(engine, ttl_reachability=300, ttl_network=3600)
    now = datetime.now(UTC)
    stored = [f"+37251{i:06d}" for i in range(0, 1200, 2)]  # more than one chunk is asked for below
    cache.write([("upstream:a", LiveAnswer(n, True, checked_at=now)) for n in stored], now)
    asked = [[f"+37251{i:06d}" for i in range(j, 1200, 7)] for j in range(7)]
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    executor = ThreadPoolExecutor(max_workers=1)
    executor.shutdown()  # a read sent to a thread would fail
    reads = CoalescedReads(cache, executor, here=cache.read_here)

    async def turn() -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(reads.read(numbers) for numbers in asked)))

    found = asyncio.run(turn())
    assert (reads.reads, reads.requests) == (1, len(asked))
    assert not any("FROM live_cache" in s for s in statements)  # no SQLAlchemy read
    for numbers, rows in zip(asked, found, strict=True):
        assert {n for n in numbers if n in rows} == {n for n in numbers if int(n[-6:]) % 2 == 0}
    cache.close()
    engine.dispose()


@sqlite_only
def test_a_read_sqlite_refuses_on_the_loop_goes_to_the_thread(tmp_path: Path) -> None:
    """The loop never waits on a lock: while another connection holds the file exclusively, the thread reads."""
    engine = make_engine(database_url(tmp_path / "db"))
    upgrade(engine)
    cache = LiveCache(engine, ttl_reachability=300, ttl_network=3600)
    now = datetime.now(UTC)
    numbers = _stored_for_reads(cache, now)
    expected = cache.read(numbers, now)
    engine.dispose()  # no pooled connection has the file open: the holder's exclusive lock can be taken
    holder = sqlite3.connect(str(engine.url.database), isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("DELETE FROM live_cache WHERE number = '+16'")  # a write: the lock is taken now
    holder.execute("COMMIT")  # in exclusive locking mode the lock stays until the connection closes
    assert cache.read_here(numbers, now) is None
    statements: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    with ThreadPoolExecutor(max_workers=1) as executor:
        reads = CoalescedReads(cache, executor, here=cache.read_here)

        async def read() -> dict[str, Any]:
            asyncio.get_running_loop().call_later(0.2, holder.close)  # the thread's read waits for it
            return await reads.read(numbers)

        assert asyncio.run(read()) == expected
    assert sum("FROM live_cache" in s for s in statements) == 1
    cache.close()
    engine.dispose()
