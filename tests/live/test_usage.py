"""Live source usage stored by its compiled upsert: the rows SQLAlchemy's own statement stores, increments added."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from numlookup.billing.prices import ChargeClass
from numlookup.live import usage
from numlookup.live.cache import LiveCache
from numlookup.live.router import Router
from numlookup.live.service import LiveResult, LiveService
from numlookup.live.usage import Counts, Key, Pricing
from numlookup.metrics import Metrics
from numlookup.numbering import Resolver
from numlookup.store import make_engine, upgrade
from numlookup.store.engine import write_transaction
from numlookup.store.tables import source_usage
from numlookup.store.upsert import upsert
from tests.support import database_url

PRICING = {"upstream:a": Pricing(cost_micros=2500, currency="EUR"), "ref:upstream:a": Pricing(2500, "EUR")}


def reference_store(conn: Connection, taken: dict[Key, Counts]) -> None:
    """The statement ``usage.store`` ran before it was compiled once: SQLAlchemy Core's upsert of increments."""
    names = ("queries", "numbers", "answered", "failures", "cost_micros", "credits_micros")
    rows = [
        {"day": day, "source": source, "currency": PRICING.get(source, Pricing()).currency}
        | {name: getattr(counts, name) for name in names}
        for (day, source), counts in sorted(taken.items())
    ]
    insert = upsert(conn.dialect.name, source_usage)
    increments = {name: source_usage.c[name] + insert.excluded[name] for name in names}
    statement = insert.on_conflict_do_update(
        index_elements=["day", "source"], set_={**increments, "currency": insert.excluded.currency}
    )
    conn.execute(statement, rows)


def test_usage_upsert_stores_what_sqlalchemys_statement_stores(tmp_path: Path) -> None:
    engine = make_engine(database_url(tmp_path / "db"))
    upgrade(engine)
    first, second = date(2026, 3, 4), date(2026, 3, 5)
    rounds: list[dict[Key, Counts]] = [
        {(first, "upstream:a"): Counts(queries=3, numbers=30, answered=28, cost_micros=70000)},
        {
            (first, "upstream:a"): Counts(queries=1, numbers=10, failures=1, credits_micros=123456),
            (second, "upstream:a"): Counts(queries=2, numbers=2, answered=2, cost_micros=5000),
            (second, "osmo-hlr"): Counts(queries=7, numbers=7, answered=6),  # no pricing: no currency
        },
    ]
    for taken in rounds:  # the second round adds to rows the first stored, and makes new ones
        with write_transaction(engine) as conn:
            usage.store(conn, taken, PRICING)
            reference_store(conn, {(day, "ref:" + source): counts for (day, source), counts in taken.items()})

    def stored(reference: bool) -> list[tuple[Any, ...]]:
        """The rows as the database holds them, ours or the reference statement's (its sources' prefix dropped)."""
        with engine.connect() as conn:
            raw = conn.exec_driver_sql("SELECT * FROM source_usage ORDER BY day, source").all()
        return [(r[0], r[1].removeprefix("ref:"), *r[2:]) for r in raw if r[1].startswith("ref:") is reference]

    assert stored(reference=False) == stored(reference=True) and len(stored(reference=False)) == 3
    assert {(u.day, u.source): (u.queries, u.numbers, u.answered, u.failures) for u in usage.read(engine, first)} == {
        (first, "upstream:a"): (4, 40, 28, 1),
        (second, "upstream:a"): (2, 2, 2, 0),
        (second, "osmo-hlr"): (7, 7, 6, 0),
        (first, "ref:upstream:a"): (4, 40, 28, 1),
        (second, "ref:upstream:a"): (2, 2, 2, 0),
        (second, "ref:osmo-hlr"): (7, 7, 6, 0),
    }
    engine.dispose()


def test_counts_add_and_subtract_every_field() -> None:
    """``add``/``subtract`` name the fields one by one (a commit adds a request's credits per request): all of them."""
    names = [field.name for field in fields(Counts)]
    ones = Counts(**dict.fromkeys(names, 1))
    total = Counts()
    total.add(ones)
    total.add(Counts(**{name: index for index, name in enumerate(names, 2)}))
    assert [getattr(total, name) for name in names] == list(range(3, 3 + len(names)))
    total.subtract(ones)
    assert [getattr(total, name) for name in names] == list(range(2, 2 + len(names)))
    assert usage.merged({(date(2026, 3, 4), "a"): ones}, {(date(2026, 3, 4), "a"): ones}) == {
        (date(2026, 3, 4), "a"): Counts(**dict.fromkeys(names, 2))
    }


def test_a_commit_carrying_several_requests_stores_the_sum_of_their_credits(tmp_path: Path) -> None:
    """Each request's credits by source (``LiveService.attachment``), stored by one commit: their sums, with the
    usage counted meanwhile, in the day rows."""
    engine = make_engine(database_url(tmp_path / "db"))
    upgrade(engine)
    service = LiveService(Router([]), {}, LiveCache(engine, 60, 60), Resolver(), Metrics())
    service.usage.pricing = PRICING
    now = datetime.now(UTC)
    prices: dict[ChargeClass, int] = {"live": 30_000, "cache": 5_000, "offline": 1_000}

    def request(*answers: tuple[str, ChargeClass]) -> list[object]:
        results = {f"+3725100000{i}": LiveResult(s, now, c) for i, (s, c) in enumerate(answers)}
        return list(service.attachment(results, prices.__getitem__))

    attached = [
        *request(("upstream:a", "live"), ("upstream:a", "live"), ("cache", "cache")),
        *request(("upstream:a", "live"), ("offline", "offline")),
        *request(("upstream:b", "live")),
        *request(("offline", "offline")),  # nothing charged for a live source: no credits
    ]
    service.usage.request("upstream:a", 10, 9, failed=False)
    with write_transaction(engine) as conn:
        after = service.store(conn, attached)
    assert after is not None
    after()
    with engine.connect() as conn:
        rows = {r.source: r for r in conn.execute(source_usage.select()).all()}
    assert {s: (r.day, r.credits_micros) for s, r in rows.items()} == {
        "upstream:a": (now.date(), 90_000),
        "upstream:b": (now.date(), 30_000),
        "cache": (now.date(), 5_000),
    }
    assert (rows["upstream:a"].queries, rows["upstream:a"].answered, rows["upstream:a"].cost_micros) == (1, 9, 22_500)
    assert not service.usage  # what the commit stored left the worker's memory
    engine.dispose()
