"""The operator console's figures, read straight from a real database (SQLite, or PostgreSQL) and a real live layer.

The pages only render what these functions return, so the sums, the rates, the
margins and the refusals are checked here, against rows the test wrote through
the same code the server writes them with (the ledger's service functions, the
live usage store, the dataset catalogue), and against a live source that
answers over a real socket.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from numlookup.accounts import get_account, list_accounts
from numlookup.api.console import operator_views as views
from numlookup.billing import ledger_rows, parse_amount
from numlookup.billing.money import AmountError
from numlookup.datasets import catalog
from numlookup.live import usage
from numlookup.live.service import LiveService
from numlookup.metrics import Metrics
from numlookup.numbering import Resolver
from numlookup.settings import load_settings
from numlookup.store.engine import write_transaction
from tests.conftest import AccountFactory
from tests.live_config import write_config
from tests.peers.messente import Peer

NOW = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC)


def test_a_span_is_whole_buckets_ending_with_the_current_one() -> None:
    day = views.span("24h", NOW)
    assert day is not None and day.bucket == "hour"
    assert (day.since, day.until) == (datetime(2026, 3, 13, 16, tzinfo=UTC), datetime(2026, 3, 14, 16, tzinfo=UTC))
    month = views.span(None, NOW)
    assert month is not None and (month.name, month.bucket) == ("30d", "day")
    assert (month.since, month.until) == (datetime(2026, 2, 13, tzinfo=UTC), datetime(2026, 3, 15, tzinfo=UTC))
    quarter = views.span("90d", NOW)
    assert quarter is not None and quarter.until - quarter.since == timedelta(days=90)
    assert views.span("7d", NOW) is None and views.span("", NOW) is None


def test_account_lines_carry_balance_reserved_and_last_activity(engine: Engine, make_account: AccountFactory) -> None:
    first, second = make_account("12.5"), make_account("0")
    ids = {a.name: a.id for a in list_accounts(engine)}
    lines = views.account_lines(engine, {ids[first.name]: NOW})
    assert [(a.name, a.balance, a.reserved, a.spendable, a.enabled, a.last_activity) for a in lines] == [
        (first.name, parse_amount("12.5"), 0, parse_amount("12.5"), True, NOW),
        (second.name, 0, 0, 0, True, None),
    ]


def test_create_top_up_disable_through_the_service(engine: Engine) -> None:
    created = views.create_account(engine, "  acme  ", "2.000001")
    assert created.name == "acme" and created.api_password
    charge = views.top_up(engine, "acme", "0.5", "  invoice 7 ")
    assert charge.balance_after == parse_amount("2.500001")
    [top_up, initial] = ledger_rows(engine, get_account(engine, "acme").id, None)
    assert (top_up.kind, top_up.amount, top_up.note) == ("credit", parse_amount("0.5"), "invoice 7")
    assert (initial.kind, initial.amount, initial.note) == ("credit", parse_amount("2.000001"), "initial credits")
    assert views.set_enabled(engine, "acme", False).enabled is False
    assert views.set_enabled(engine, "acme", True).enabled is True
    assert views.create_account(engine, "empty", " ").name == "empty"
    assert get_account(engine, "empty").balance == 0


@pytest.mark.parametrize(
    ("action", "sentence"),
    [
        (lambda e: views.create_account(e, "taken", "1"), "An account named 'taken' exists already."),
        (lambda e: views.create_account(e, "a/b", "1"), "An account name has no control characters and no '/'."),
        (lambda e: views.create_account(e, "new", "1.0000001"), "1.0000001 has more than 6 decimal places."),
        (lambda e: views.create_account(e, "new", "ten"), "'ten' is not a decimal number."),
        (lambda e: views.top_up(e, "taken", "-1", ""), "-1 is negative."),
        (lambda e: views.top_up(e, "taken", "0", ""), "A top-up must be more than zero."),
        (lambda e: views.top_up(e, "taken", "1e400", ""), "1E+400 is too large."),
        (lambda e: views.top_up(e, "nobody", "1", ""), "There is no account named 'nobody'."),
        (lambda e: views.set_enabled(e, "nobody", False), "There is no account named 'nobody'."),
    ],
)
def test_refusals_say_why_and_change_nothing(engine: Engine, action: object, sentence: str) -> None:
    views.create_account(engine, "taken", "3")
    before = [(a, ledger_rows(engine, a.id, None)) for a in list_accounts(engine)]
    with pytest.raises(Exception) as refused:
        action(engine)  # type: ignore[operator]  # the parametrized lambdas
    assert views.refusal(refused.value) == sentence
    assert [(a, ledger_rows(engine, a.id, None)) for a in list_accounts(engine)] == before


def test_an_unexpected_error_is_no_refusal() -> None:
    assert views.refusal(RuntimeError("boom")) is None
    assert views.refusal(AmountError("x is negative")) == "X is negative."


def test_source_days_and_totals_from_the_stored_usage(engine: Engine) -> None:
    today = date(2026, 3, 14)
    pricing = {"upstream:a": usage.Pricing(4000, "EUR")}
    with write_transaction(engine) as conn:
        usage.store(
            conn,
            {
                (today, "upstream:a"): usage.Counts(3, 30, 29, 1, 116_000, 1_450_000),
                (today - timedelta(days=1), "upstream:a"): usage.Counts(1, 10, 10, 0, 40_000, 20_000),
                (today, "cache"): usage.Counts(credits_micros=6000),
                (today - timedelta(days=40), "upstream:a"): usage.Counts(9, 9, 9, 0, 1, 1),  # before the range
            },
            pricing,
        )
    days = views.source_days(engine, 30, today)
    assert [(d.day, d.source) for d in days] == [
        (today, "cache"),
        (today, "upstream:a"),
        (today - timedelta(days=1), "upstream:a"),
    ]
    a = days[1]
    assert (a.answer_rate, a.margin_micros, views.money(a.margin_micros)) == ("96.7%", 1_334_000, "1.334")
    assert days[2].margin_micros == -20_000 and views.money(days[2].margin_micros) == "-0.02"
    assert days[0].answer_rate == "–"  # nothing asked of the cache's row
    totals = views.source_totals(days)
    assert [
        (t.source, t.day, t.queries, t.numbers, t.answered, t.failures, t.cost_micros, t.credits_micros) for t in totals
    ] == [
        ("cache", today, 0, 0, 0, 0, 0, 6000),
        ("upstream:a", today - timedelta(days=1), 4, 40, 39, 1, 156_000, 1_470_000),
    ]
    assert totals[1].answer_rate == "97.5%"


def test_sources_now_is_this_workers_breaker_and_latency(tmp_path: Path, engine: Engine) -> None:
    """A source that fails opens its circuit; one that answers counts its latency; both as this worker saw them."""
    with Peer(mode="http500") as broken, Peer(default_status="ONLINE") as good:
        config = write_config(
            tmp_path / "numlookup.toml",
            routes=[{"match": "cc:49", "source": "broken"}, {"match": "cc:372", "source": "good"}],
            upstreams={
                "broken": {"url": broken.url, "username": "u", "password": "p", "timeout": 2.0},
                "good": {"url": good.url, "username": "u", "password": "p", "kind": "messente"},
            },
            live_breaker_failures=1,
            live_breaker_reset_seconds=600.0,
        )
        settings = load_settings(str(config), environ={})
        metrics = Metrics()
        resolver = Resolver()
        live = LiveService.from_settings(settings, engine, resolver, metrics)
        assert live is not None
        assert [s.circuit for s in views.sources_now(live, metrics, settings)] == ["closed", "closed"]

        async def ask() -> None:
            await live.lookup(resolver.resolve(["+4915112345678", "+37255512345"]), max_age=0)
            metrics.flush()
            await live.close()

        asyncio.run(ask())
    found = {s.name: s for s in views.sources_now(live, metrics, settings)}
    assert list(found) == ["upstream:broken", "upstream:good"]
    assert (found["upstream:broken"].kind, found["upstream:broken"].circuit) == ("messente", "open")
    assert found["upstream:broken"].requests == {"error": 1}
    assert (found["upstream:good"].circuit, found["upstream:good"].requests) == ("closed", {"ok": 1})
    assert found["upstream:good"].latency_count == 1 and found["upstream:good"].latency_sum > 0
    assert found["upstream:good"].mean_ms.endswith(" ms") and found["upstream:good"].p95_ms.startswith("≤ ")
    assert views.sources_now(None, metrics, settings) == []


def test_quantile_bound_reads_the_cumulative_buckets() -> None:
    buckets = [(0.01, 2), (0.1, 18), (1.0, 20), (float("inf"), 20)]
    assert views._quantile_bound(buckets, 20, 95) == 1.0
    assert views._quantile_bound(buckets, 20, 90) == 0.1
    assert views._quantile_bound(buckets, 0, 95) is None
    assert views._quantile_bound([(0.01, 0), (float("inf"), 1)], 1, 95) == float("inf")


def test_dataset_versions_newest_import_first(engine: Engine) -> None:
    def version(kind: str, at: datetime) -> catalog.DatasetVersion:
        return catalog.DatasetVersion(kind, 0, "csv", "ranges.csv", "full", 3, 4, 1, f"{kind}/{at:%s}", True, at)

    catalog.activate(engine, version("ranges", NOW - timedelta(days=2)))
    catalog.activate(engine, version("ported", NOW - timedelta(days=1)))
    catalog.activate(engine, version("ranges", NOW))
    found = views.dataset_versions(engine)
    assert [(v.kind, v.version, v.active) for v in found] == [
        ("ranges", 2, True),
        ("ported", 1, True),
        ("ranges", 1, False),
    ]


def test_the_coverage_table_is_the_shipped_datas() -> None:
    from numlookup.numbering.coverage import coverage
    from numlookup.numbering.networks import NetworkRegistry

    table = views.coverage_table()
    report = coverage(NetworkRegistry.shipped())
    assert [r.region for r in table.regions] == [r.region for r in report.regions]
    estonia = next(r for r in table.regions if r.region == "EE")
    measured = report.region("EE")
    assert measured is not None and estonia.country == "Estonia"
    assert (estonia.numbers, estonia.mapped_numbers) == (measured.numbers, measured.mapped_numbers)
    assert estonia.share == f"{measured.share * 100:.1f}%"
    assert table.total.numbers == sum(r.numbers for r in table.regions) == report.numbers
    assert table.total.share == f"{report.share * 100:.1f}%"


def _error(cache: views.CoverageCache) -> str | None:
    return cache.error


def test_the_coverage_cache_is_claimed_once() -> None:
    cache = views.CoverageCache()
    assert cache.get() is None and cache.claim() and not cache.claim()
    cache.failed("the CPU process died")
    assert cache.error == "the CPU process died" and cache.claim()
    table = views.CoverageTable((), views.CountryCoverage("", "All regions", 0, 0, 0, 0, ()))
    cache.done(table)
    assert cache.get() is table and not cache.claim()
    assert _error(cache) is None
