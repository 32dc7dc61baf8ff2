"""The usage rollup on a real database: charts read from it equal sums over the ledger's rows, folded or not."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, insert, select

from numlookup.accounts import get_account
from numlookup.billing import charge, ledger_rows
from numlookup.billing.ledger import Counts, Debit, debit_batch
from numlookup.billing.rollup import (
    GAP_TTL,
    AccountTotals,
    UsageBucket,
    account_usage,
    last_activity,
    roll_up,
    top_accounts,
    traffic,
)
from numlookup.store import upgrade
from numlookup.store.engine import write_transaction
from numlookup.store.migrate import downgrade
from numlookup.store.tables import ledger, usage_daily, usage_rollup_gaps, usage_rollup_state
from tests.conftest import AccountFactory

START = datetime(2026, 11, 1, tzinfo=UTC)
DAYS = 3
KINDS = ("lookup", "lookup", "lookup", "job", "credit", "adjustment")


def add_rows(engine: Engine, account_ids: list[int], count: int, seed: int) -> None:
    """Ledger rows of every kind at random moments of ``DAYS`` days; some charges without classes (older rows)."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for _ in range(count):
        kind = rng.choice(KINDS)
        at = START + timedelta(seconds=rng.randrange(DAYS * 86_400))
        row: dict[str, Any] = {
            "account_id": rng.choice(account_ids),
            "kind": kind,
            "amount": rng.randrange(1, 90_000),
            "numbers": 0,
            "balance_after": 0,
            "created_at": at,
            "offline": None,
            "cached": None,
            "live": None,
            "invalid": None,
        }
        if kind in ("lookup", "job"):
            offline, cached, live = rng.randrange(5), rng.randrange(3), rng.randrange(3)
            row.update(amount=-rng.randrange(0, 90_000), numbers=offline + cached + live)
            if rng.random() < 0.9:
                row.update(offline=offline, cached=cached, live=live, invalid=rng.randrange(4))
        rows.append(row)
    with write_transaction(engine) as conn:
        conn.execute(insert(ledger), rows)


def expected(
    engine: Engine, account_id: int | None, bucket: str, since: datetime = START, days: int = DAYS
) -> list[UsageBucket]:
    """The buckets summed straight from every ledger row: the oracle the rollup must equal."""
    step = timedelta(days=1) if bucket == "day" else timedelta(hours=1)
    starts = [since + i * step for i in range(days * (1 if bucket == "day" else 24))]
    sums = {s: [0] * 6 for s in starts}
    query = select(ledger).where(ledger.c.kind.in_(("lookup", "job")))
    if account_id is not None:
        query = query.where(ledger.c.account_id == account_id)
    with engine.connect() as conn:
        for r in conn.execute(query):
            at = r.created_at.replace(minute=0, second=0, microsecond=0)
            if bucket == "day":
                at = at.replace(hour=0)
            if at not in sums:
                continue
            classes = (r.numbers, 0, 0, 0) if r.offline is None else (r.offline, r.cached, r.live, r.invalid)
            for i, v in enumerate((1, *classes, -r.amount)):
                sums[at][i] += v
    return [UsageBucket(s, *v) for s, v in sums.items()]


def chart(engine: Engine, account_id: int | None, bucket: str) -> list[UsageBucket]:
    until = START + timedelta(days=DAYS)
    with engine.connect() as conn:
        if account_id is None:
            return traffic(conn, START, until, bucket)  # type: ignore[arg-type]  # "hour" or "day"
        return account_usage(conn, account_id, START, until, bucket)  # type: ignore[arg-type]


def assert_charts_match(engine: Engine, account_ids: Iterable[int]) -> None:
    for bucket in ("hour", "day"):
        for account_id in (*account_ids, None):
            got = chart(engine, account_id, bucket)
            assert got == expected(engine, account_id, bucket)
            assert len(got) == DAYS * (24 if bucket == "hour" else 1)  # every bucket, zeros too


def watermark(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(usage_rollup_state.c.last_id), 0))).scalar_one())


def test_charts_equal_the_ledger_unfolded_partly_folded_and_folded(
    engine: Engine, make_account: AccountFactory
) -> None:
    ids = [get_account(engine, make_account(credits="0").name).id for _ in range(3)]
    add_rows(engine, ids, 400, seed=1)
    assert_charts_match(engine, ids)  # nothing folded: the tail alone
    folded = roll_up(engine, batch=37)  # many small transactions
    assert folded == len([r for i in ids for r in ledger_rows(engine, i, None) if r.kind in ("lookup", "job")])
    assert_charts_match(engine, ids)
    add_rows(engine, ids, 150, seed=2)
    assert_charts_match(engine, ids)  # the rollup plus a tail
    assert roll_up(engine) > 0
    assert roll_up(engine) == 0  # nothing left: an idle fold folds nothing
    assert_charts_match(engine, ids)


def expected_totals(engine: Engine, low: datetime, high: datetime) -> dict[int, tuple[int, int, int]]:
    """Per account: requests, charged numbers and credits of the charges in ``[low, high)``, from every ledger row."""
    out: dict[int, tuple[int, int, int]] = {}
    with engine.connect() as conn:
        for r in conn.execute(select(ledger).where(ledger.c.kind.in_(("lookup", "job")))):
            if low <= r.created_at < high:
                numbers = r.numbers if r.offline is None else r.offline + r.cached + r.live
                requests, counted, credits = out.get(r.account_id, (0, 0, 0))
                out[r.account_id] = (requests + 1, counted + numbers, credits - r.amount)
    return out


@pytest.mark.parametrize(
    ("since", "until"),
    [
        (START + timedelta(hours=5, minutes=30), START + timedelta(days=2, hours=3)),  # days with hours either side
        (START, START + timedelta(days=DAYS)),  # whole days only
        (START + timedelta(hours=20), START + timedelta(days=1, hours=2)),  # across one midnight, no whole day
        (START + timedelta(hours=1), START + timedelta(hours=4)),  # within one day
    ],
)
def test_top_accounts_sum_the_ledger_over_days_and_hours(
    engine: Engine, make_account: AccountFactory, since: datetime, until: datetime
) -> None:
    ids = [get_account(engine, make_account(credits="0").name).id for _ in range(4)]
    add_rows(engine, ids, 500, seed=3)
    roll_up(engine)
    add_rows(engine, ids, 100, seed=4)  # and a tail
    low = since.replace(minute=0)
    high = until if until.minute == 0 else until.replace(minute=0) + timedelta(hours=1)
    want = expected_totals(engine, low, high)
    with engine.connect() as conn:
        top = top_accounts(conn, since, until, limit=10)
    assert {t.account_id: (t.requests, t.numbers, t.credits) for t in top} == want
    assert [t.credits for t in top] == sorted((t.credits for t in top), reverse=True)


def test_the_daily_rollup_is_filled_from_the_hourly_one_on_upgrade(
    engine: Engine, make_account: AccountFactory
) -> None:
    ids = [get_account(engine, make_account(credits="0").name).id for _ in range(2)]
    add_rows(engine, ids, 300, seed=5)
    roll_up(engine)
    with engine.connect() as conn:
        before = sorted(tuple(r) for r in conn.execute(select(usage_daily)))
    assert before  # the fold wrote days
    downgrade(engine, "0010")
    upgrade(engine)
    with engine.connect() as conn:
        assert sorted(tuple(r) for r in conn.execute(select(usage_daily))) == before


def test_a_bucket_is_whole_and_an_empty_range_has_none(engine: Engine, make_account: AccountFactory) -> None:
    account = get_account(engine, make_account(credits="1").name)
    charge(engine, account.id, "r1", 10_000, 2, Counts(offline=1, live=1, invalid=3))
    [at] = [r.created_at for r in ledger_rows(engine, account.id) if r.request_id == "r1"]
    now = datetime.now(UTC)
    with engine.connect() as conn:
        # From the charge's moment (within its hour) for a microsecond: the whole hour's bucket.
        [hour] = account_usage(conn, account.id, at, at + timedelta(microseconds=1), "hour")
        assert (hour.requests, hour.offline, hour.cached, hour.live, hour.invalid) == (1, 1, 0, 1, 3)
        assert (hour.credits, hour.numbers) == (10_000, 2)
        assert hour.start == at.replace(minute=0, second=0, microsecond=0)
        assert account_usage(conn, account.id, now, now, "day") == []
        with pytest.raises(ValueError, match="bucket must be"):
            account_usage(conn, account.id, now - timedelta(days=1), now, "week")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="aware"):
            traffic(conn, datetime(2026, 1, 1), datetime(2026, 1, 2), "day")
    with pytest.raises(ValueError, match="batch"):
        roll_up(engine, batch=0)


def test_charges_carry_their_classes_and_credits_none(engine: Engine, make_account: AccountFactory) -> None:
    rich = get_account(engine, make_account(credits="1").name)
    poor = get_account(engine, make_account(credits="0.02").name)
    with write_transaction(engine) as conn:
        debit_batch(
            conn,
            [
                Debit(rich.id, "a", 30_000, 3, Counts(offline=1, cached=1, live=1, invalid=2)),
                Debit(poor.id, "b", 10_000, 1, Counts(offline=1)),
                Debit(poor.id, "c", 20_000, 2, Counts(live=2, invalid=1)),  # not covered with b: one by one
            ],
        )
    [a, _] = ledger_rows(engine, rich.id)
    assert a.counts == Counts(offline=1, cached=1, live=1, invalid=2)
    rows = {r.request_id: r for r in ledger_rows(engine, poor.id)}
    assert rows["b"].counts == Counts(offline=1)
    assert "c" not in rows  # refused: 0.01 was left after b
    assert rows[None].kind == "credit" and rows[None].counts is None


def test_top_accounts_and_last_activity(engine: Engine, make_account: AccountFactory) -> None:
    names = [make_account(credits="1").name for _ in range(3)]
    a, b, c = (get_account(engine, n) for n in names)
    charge(engine, a.id, "a1", 10_000, 1, Counts(offline=1))
    charge(engine, b.id, "b1", 50_000, 5, Counts(offline=2, live=3))
    roll_up(engine)
    charge(engine, a.id, "a2", 60_000, 6, Counts(cached=6))  # in the tail
    now = datetime.now(UTC)
    with engine.connect() as conn:
        top = top_accounts(conn, now - timedelta(days=1), now + timedelta(hours=1))
        activity = last_activity(conn)
        assert top_accounts(conn, now - timedelta(days=1), now + timedelta(hours=1), limit=1) == top[:1]
    newest = {r.account_id: r.created_at for r in _all_rows(engine)}
    assert top == [
        AccountTotals(a.id, a.name, 2, 7, 70_000, newest[a.id]),
        AccountTotals(b.id, b.name, 1, 5, 50_000, newest[b.id]),
    ]  # c charged nothing: not listed
    assert activity == newest  # c's credit row is its activity
    assert set(activity) == {a.id, b.id, c.id}


def _all_rows(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(ledger).order_by(ledger.c.id)))


def test_an_id_committed_after_a_higher_one_is_not_lost(engine: Engine, make_account: AccountFactory) -> None:
    """PostgreSQL: id N's transaction commits after N+1 was folded; the gap waits for it, the charts count it."""
    first = get_account(engine, make_account(credits="1").name)
    second = get_account(engine, make_account(credits="1").name)
    roll_up(engine)
    late_charge = {
        "account_id": first.id,
        "kind": "lookup",
        "request_id": "late",
        "amount": -40_000,
        "numbers": 4,
        "balance_after": 0,
        "created_at": datetime.now(UTC),
        "offline": 4,
        "cached": 0,
        "live": 0,
        "invalid": 0,
    }
    if engine.dialect.name == "postgresql":
        late = engine.connect()
        held = late.begin()
        charge_row = late.execute(  # takes its id now, commits last
            insert(ledger).values(**late_charge).returning(ledger.c.id)
        ).scalar_one()
        charge(engine, second.id, "early", 10_000, 1, Counts(offline=1))
        roll_up(engine)
        held.commit()
        late.close()
    else:  # one writer at a time: the same order of ids and commits, made by hand
        charge(engine, second.id, "early", 10_000, 1, Counts(offline=1))
        early = max(r.id for r in _all_rows(engine))
        with write_transaction(engine) as conn:  # the early row takes a later id than the late one
            conn.execute(ledger.update().where(ledger.c.id == early).values(id=early + 1))
        roll_up(engine)
        charge_row = early
        with write_transaction(engine) as conn:
            conn.execute(insert(ledger).values(id=charge_row, **late_charge))
    assert watermark(engine) > charge_row
    with engine.connect() as conn:
        assert charge_row in set(conn.execute(select(usage_rollup_gaps.c.ledger_id)).scalars())
    now = datetime.now(UTC)
    day = (now - timedelta(hours=1), now + timedelta(hours=1))

    def spent(account_id: int) -> int:
        with engine.connect() as conn:
            return sum(b.credits for b in account_usage(conn, account_id, *day, "hour"))

    assert (spent(first.id), spent(second.id)) == (40_000, 10_000)  # the late row counts from the gap, unfolded
    assert roll_up(engine) == 1
    assert (spent(first.id), spent(second.id)) == (40_000, 10_000)  # folded once, counted once
    with engine.connect() as conn:
        assert list(conn.execute(select(usage_rollup_gaps))) == []


def test_a_gap_no_row_fills_is_forgotten(engine: Engine, make_account: AccountFactory) -> None:
    """A rolled-back charge used its id: the gap is kept for ``GAP_TTL``, then dropped."""
    account = get_account(engine, make_account(credits="1").name)
    charge(engine, account.id, "one", 10_000, 1, Counts(offline=1))
    with pytest.raises(RuntimeError), write_transaction(engine) as conn:
        charge_id = conn.execute(
            insert(ledger)
            .values(
                account_id=account.id,
                kind="lookup",
                request_id="rolled-back",
                amount=-1,
                numbers=1,
                balance_after=0,
                created_at=datetime.now(UTC),
            )
            .returning(ledger.c.id)
        ).scalar_one()
        raise RuntimeError("the request failed")
    charge(engine, account.id, "two", 10_000, 1, Counts(offline=1))
    if engine.dialect.name == "sqlite":  # SQLite gives a rolled-back rowid again: make the hole by hand
        with write_transaction(engine) as conn:
            conn.execute(ledger.update().where(ledger.c.request_id == "two").values(id=charge_id + 1))
    assert roll_up(engine) == 2
    with engine.connect() as conn:
        assert set(conn.execute(select(usage_rollup_gaps.c.ledger_id)).scalars()) == {charge_id}
    assert roll_up(engine, now=datetime.now(UTC) + GAP_TTL / 2) == 0
    with engine.connect() as conn:
        assert set(conn.execute(select(usage_rollup_gaps.c.ledger_id)).scalars()) == {charge_id}
    roll_up(engine, now=datetime.now(UTC) + GAP_TTL * 2)
    with engine.connect() as conn:
        assert list(conn.execute(select(usage_rollup_gaps))) == []


def test_folds_from_many_threads_count_each_charge_once(engine: Engine, make_account: AccountFactory) -> None:
    """Nodes fold at once while charges commit: the watermark's lock makes them take turns."""
    ids = [get_account(engine, make_account(credits="1000").name).id for _ in range(4)]
    stop = threading.Event()
    errors: list[BaseException] = []

    def charges(account_id: int) -> None:
        try:
            for n in range(60):
                charge(engine, account_id, f"{account_id}-{n}", 1_000 + n, 1, Counts(offline=1, invalid=n % 2))
        except BaseException as exc:
            errors.append(exc)

    def folds() -> None:
        try:
            while not stop.is_set():
                roll_up(engine, batch=7)
        except BaseException as exc:
            errors.append(exc)

    chargers = [threading.Thread(target=charges, args=(i,)) for i in ids]
    folders = [threading.Thread(target=folds) for _ in range(3)]
    for t in (*chargers, *folders):
        t.start()
    for t in chargers:
        t.join()
    stop.set()
    for t in folders:
        t.join()
    assert errors == []
    roll_up(engine)
    now = datetime.now(UTC)
    with engine.connect() as conn:
        total = traffic(conn, now - timedelta(hours=2), now + timedelta(hours=1), "day")
        per_account = [account_usage(conn, i, now - timedelta(hours=2), now + timedelta(hours=1), "day") for i in ids]
    assert sum(b.requests for b in total) == 240
    assert sum(b.credits for b in total) == 4 * sum(1_000 + n for n in range(60))
    assert sum(b.invalid for b in total) == 4 * 30
    for buckets in per_account:
        assert sum(b.requests for b in buckets) == 60 and sum(b.offline for b in buckets) == 60


def test_a_fold_reads_the_ids_only_of_a_batch_with_a_hole(engine: Engine, make_account: AccountFactory) -> None:
    """The fold measures its batch in one statement: ids that run on from the watermark are never read into
    Python; a batch that skips an id reads its ids, and the id skipped becomes a gap. Charts equal the ledger."""
    from numlookup.billing import rollup

    ids = [get_account(engine, make_account(credits="1").name).id for _ in range(2)]
    add_rows(engine, ids, 300, seed=3)
    reads_ids = str(rollup._IDS.compile(dialect=engine.dialect))
    statements: list[str] = []

    def seen(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        assert roll_up(engine, batch=64) == sum(
            r.kind in ("lookup", "job") for i in ids for r in ledger_rows(engine, i, None)
        )
        assert reads_ids not in statements
        assert_charts_match(engine, ids)
        with pytest.raises(RuntimeError), write_transaction(engine) as conn:  # a rolled-back charge used an id
            skipped = conn.execute(
                insert(ledger)
                .values(account_id=ids[0], kind="lookup", amount=-1, numbers=1, balance_after=0, created_at=START)
                .returning(ledger.c.id)
            ).scalar_one()
            raise RuntimeError("the request failed")
        charge(engine, ids[1], "after-the-hole", 10_000, 1, Counts(offline=1))
        if engine.dialect.name == "sqlite":  # SQLite gives a rolled-back rowid again: make the hole by hand
            with write_transaction(engine) as conn:
                conn.execute(ledger.update().where(ledger.c.request_id == "after-the-hole").values(id=skipped + 1))
        statements.clear()
        assert roll_up(engine) == 1
        assert reads_ids in statements
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    with engine.connect() as conn:
        assert set(conn.execute(select(usage_rollup_gaps.c.ledger_id)).scalars()) == {skipped}
    assert_charts_match(engine, ids)


def _commit_after_the_measure(engine: Engine, commit: Any) -> Any:
    """A listener committing ``commit`` (another connection's transaction) right after the fold measures its batch."""
    from numlookup.billing import rollup

    committed: list[bool] = []

    def after(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        compiled = getattr(context, "compiled", None)
        if compiled is not None and compiled.statement is rollup._BATCH and not committed:
            committed.append(True)
            commit()

    event.listen(engine, "after_cursor_execute", after)
    return after


def _charge_row(account_id: int) -> dict[str, Any]:
    return {
        "account_id": account_id,
        "kind": "lookup",
        "amount": -7,
        "numbers": 1,
        "balance_after": 0,
        "created_at": START,
        **{"offline": 1, "cached": 0, "live": 0, "invalid": 0},
    }


def test_a_hole_filled_between_the_folds_two_statements_is_folded(engine: Engine, make_account: AccountFactory) -> None:
    """PostgreSQL: id N (a charge) commits after the fold measured a batch holding only N+1 (a credit), before it
    read the ids. The batch is what the read found: N is folded, not lost between the two."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's one writer: nothing commits while a fold runs")
    payer = get_account(engine, make_account(credits="1").name).id
    roll_up(engine)
    late = engine.connect()
    held = late.begin()
    late.execute(insert(ledger).values(**_charge_row(payer)))
    with engine.begin() as conn:  # a credit takes the next id and commits first
        conn.execute(insert(ledger).values({**_charge_row(payer), "kind": "credit", "amount": 5}))
    listener = _commit_after_the_measure(engine, held.commit)
    try:
        assert roll_up(engine) == 1
    finally:
        event.remove(engine, "after_cursor_execute", listener)
        late.close()
    with engine.connect() as conn:
        assert list(conn.execute(select(usage_rollup_gaps))) == []
    assert_charts_match(engine, [payer])


def test_a_fold_with_only_gaps_pending_records_no_gap_above_its_watermark(
    engine: Engine, make_account: AccountFactory
) -> None:
    """PostgreSQL: rows that commit while a fold that found nothing past its watermark runs wait for the next
    fold; a gap above the watermark would be inserted again by it (a unique violation) and counted twice."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's one writer: nothing commits while a fold runs")
    payer = get_account(engine, make_account(credits="1").name).id
    roll_up(engine)
    connections = [engine.connect() for _ in range(3)]
    first = connections[0].begin()
    connections[0].execute(insert(ledger).values(**_charge_row(payer)))  # id N, in flight
    with engine.begin() as conn:
        conn.execute(insert(ledger).values(**_charge_row(payer)))  # N+1
    roll_up(engine)  # the watermark at N+1, N a gap
    second, third = connections[1].begin(), connections[2].begin()
    connections[1].execute(insert(ledger).values(**_charge_row(payer)))  # N+2, in flight
    connections[2].execute(insert(ledger).values(**_charge_row(payer)))  # N+3: commits during the next fold
    listener = _commit_after_the_measure(engine, third.commit)
    try:
        assert roll_up(engine) == 0
    finally:
        event.remove(engine, "after_cursor_execute", listener)
    with engine.connect() as conn:
        mark = watermark(engine)
        assert all(gap < mark for gap in conn.execute(select(usage_rollup_gaps.c.ledger_id)).scalars())
    assert roll_up(engine) == 1  # N+3, past the watermark; N+2's hole becomes a gap
    second.commit()
    first.commit()
    assert_charts_match(engine, [payer])
    assert roll_up(engine) == 2  # N and N+2, from their gaps
    assert_charts_match(engine, [payer])
    with engine.connect() as conn:
        assert list(conn.execute(select(usage_rollup_gaps))) == []
    for connection in connections:
        connection.close()
