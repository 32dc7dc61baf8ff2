"""Charges and credits against a real SQLite file."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, select
from sqlalchemy.exc import IntegrityError

from numlookup.accounts import get_account
from numlookup.billing import (
    BelowZero,
    InsufficientCredits,
    LedgerError,
    add_credits,
    adjust_credits,
    charge,
    ledger_rows,
    parse_amount,
)
from numlookup.billing import ledger as ledger_module
from numlookup.billing.ledger import Counts, Debit, debit_batch
from numlookup.store import account_epoch
from numlookup.store.engine import driver_transaction, write_transaction
from numlookup.store.tables import ledger
from tests.conftest import AccountFactory


class RecordingCursor:
    """A DB-API cursor that notes each statement it runs: (``execute`` or ``executemany``, its SQL)."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor
        self.statements: list[tuple[str, str]] = []

    def execute(self, sql: str, *parameters: Any) -> Any:
        self.statements.append(("execute", sql))
        return self.cursor.execute(sql, *parameters)

    def executemany(self, sql: str, parameters: Any) -> Any:
        self.statements.append(("executemany", sql))
        return self.cursor.executemany(sql, parameters)

    def fetchone(self) -> Any:
        return self.cursor.fetchone()

    def fetchall(self) -> Any:
        return self.cursor.fetchall()


def test_charge_writes_one_row_and_refuses_overdraft(engine: Engine, make_account: AccountFactory) -> None:
    creds = make_account(credits="0.03")
    account = get_account(engine, creds.name)
    done = charge(engine, account.id, "req-1", 20_000, 2)
    assert done.balance_after == 10_000
    with pytest.raises(InsufficientCredits) as info:
        charge(engine, account.id, "req-2", 20_000, 2)
    assert (info.value.balance, info.value.amount) == (10_000, 20_000)
    rows = ledger_rows(engine, account.id)
    assert [(r.kind, r.request_id, r.amount, r.balance_after) for r in rows] == [
        ("lookup", "req-1", -20_000, 10_000),
        ("credit", None, 30_000, 30_000),
    ]
    assert get_account(engine, creds.name).balance == 10_000


def test_a_request_is_charged_at_most_once(engine: Engine, make_account: AccountFactory) -> None:
    """The ledger's unique request id makes a replayed charge fail whole, balance untouched."""
    creds = make_account(credits="1")
    account = get_account(engine, creds.name)
    charge(engine, account.id, "same", 10_000, 1)
    with pytest.raises(IntegrityError):
        charge(engine, account.id, "same", 10_000, 1)
    assert get_account(engine, creds.name).balance == 990_000


def test_credits_add_up(engine: Engine, make_account: AccountFactory) -> None:
    creds = make_account(credits="0")
    account = get_account(engine, creds.name)
    for _ in range(10):
        add_credits(engine, account.id, 100_000, "dime")
    assert get_account(engine, creds.name).balance == 1_000_000
    assert len(ledger_rows(engine, account.id, None)) == 10


def test_a_batch_writes_what_one_by_one_debits_would(engine: Engine, make_account: AccountFactory) -> None:
    """One account covers its whole share of the batch, the other only part of it, in queue order."""
    rich = get_account(engine, make_account(credits="1").name)
    poor = get_account(engine, make_account(credits="0.05").name)
    debits = [
        Debit(rich.id, "r1", 10_000, 1),
        Debit(poor.id, "p1", 30_000, 3),
        Debit(rich.id, "r2", 20_000, 2),
        Debit(poor.id, "p2", 30_000, 3),  # 0.05 covers p1 (0.03) but not p1 + p2 (0.06) ...
        Debit(poor.id, "p3", 10_000, 1),  # ... and p3 (0.01) still fits after p1 alone
    ]
    with engine.begin() as conn:
        outcomes = debit_batch(conn, debits)
    after = [o.balance_after if not isinstance(o, InsufficientCredits) else ("refused", o.balance) for o in outcomes]
    assert after == [990_000, 20_000, 970_000, ("refused", 20_000), 10_000]
    assert get_account(engine, rich.name).balance == 970_000
    assert get_account(engine, poor.name).balance == 10_000
    for account in (rich, poor):
        rows = ledger_rows(engine, account.id, None)
        assert sum(r.amount for r in rows) == get_account(engine, account.name).balance
        charged = [r for r in reversed(rows) if r.kind == "lookup"]
        assert [(r.request_id, r.balance_after) for r in charged] == [
            (d.request_id, o.balance_after)
            for d, o in zip(debits, outcomes, strict=True)
            if d.account_id == account.id and not isinstance(o, InsufficientCredits)
        ]
        assert [
            o.ledger_id
            for d, o in zip(debits, outcomes, strict=True)
            if d.account_id == account.id and not isinstance(o, InsufficientCredits)
        ] == [r.id for r in charged]


def test_a_batch_through_the_driver_stores_what_sqlalchemy_stores(engine: Engine, make_account: AccountFactory) -> None:
    """debit_batch's rows (compiled once, the driver's executemany) against ``insert(ledger)`` of the same values."""
    account = get_account(engine, make_account(credits="10").name)
    debits = [
        Debit(account.id, "a1", 10_000, 1, Counts(offline=1)),
        Debit(account.id, "a2", 123_456, 9, Counts(offline=5, cached=2, live=2, invalid=3)),
        Debit(account.id, "a3", 1, 1),  # no counts: NULL class columns, as older callers write
    ]
    through_sqlalchemy: list[str] = []

    def seen(*args: object) -> None:
        through_sqlalchemy.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", seen)
    with driver_transaction(engine) as (conn, driver_cursor):  # the group commit's transaction
        cursor = RecordingCursor(driver_cursor)
        outcomes = debit_batch(conn, debits, cursor)
    event.remove(engine, "before_cursor_execute", seen)
    assert through_sqlalchemy == []  # BEGIN, the statements and COMMIT went to the driver itself
    inserts = [(how, sql) for how, sql in cursor.statements if sql.lstrip().upper().startswith("INSERT")]
    assert [how for how, _ in inserts] == ["executemany"]  # the rows in one executemany
    charges = [o for o in outcomes if not isinstance(o, InsufficientCredits)]
    assert [c.balance_after for c in charges] == [9_990_000, 9_866_544, 9_866_543]

    with engine.connect() as conn:
        written = {r.request_id: r for r in conn.execute(select(ledger).where(ledger.c.request_id.like("a%")))}
    assert [written[d.request_id].id for d in debits] == [c.ledger_id for c in charges]

    def without_id(row: dict[str, object]) -> dict[str, object]:
        return {name: value for name, value in row.items() if name != "id"}

    with write_transaction(engine) as conn:  # the same rows as SQLAlchemy writes them, under other request ids
        conn.execute(
            insert(ledger),
            [{**without_id(r._asdict()), "request_id": "b" + r.request_id[1:]} for r in written.values()],
        )

    def stored(prefix: str) -> list[tuple[object, ...]]:
        with engine.connect() as conn:
            raw = conn.exec_driver_sql("SELECT * FROM ledger ORDER BY request_id").all()  # as the database holds them
            typed = conn.execute(select(ledger).order_by(ledger.c.request_id)).all()
        return [(*r[1:3], *r[4:]) for r in [*raw, *typed] if r.request_id and r.request_id.startswith(prefix)]

    assert stored("a") == stored("b") and len(stored("a")) == 6


@pytest.mark.parametrize("numbered_on", [True, False], ids=["numbered-on", "read-back"])
def test_every_batch_size_gets_its_own_rows_ids(
    engine: Engine, make_account: AccountFactory, monkeypatch: pytest.MonkeyPatch, numbered_on: bool
) -> None:
    """The ids, numbered on from the largest (SQLite) or read back by request id through a statement per
    power of two (PostgreSQL, or where numbering on does not hold): sizes on and off the powers."""
    account = get_account(engine, make_account(credits="100").name)
    with engine.connect() as conn:
        statements = ledger_module._statements(conn)
    assert statements is not None
    if not numbered_on:
        monkeypatch.setattr(statements, "numbered_on", False)
    for size in (1, 2, 3, 8, 9, 31, 33):
        debits = [Debit(account.id, f"s{size}-{i}", 1_000 + i, 1) for i in range(size)]
        if size == 9:  # a row between two batches, of another account: the next ids are not the last ones + 1
            add_credits(engine, get_account(engine, make_account(credits="1").name).id, 1)
        with write_transaction(engine) as conn:
            outcomes = debit_batch(conn, debits)
        with engine.connect() as conn:
            selected = select(ledger.c.request_id, ledger.c.id).where(ledger.c.request_id.like(f"s{size}-%"))
            stored = {row.request_id: row.id for row in conn.execute(selected)}
        assert [o.ledger_id for o in outcomes if not isinstance(o, InsufficientCredits)] == [
            stored[d.request_id] for d in debits
        ]


def test_a_correction_is_its_own_row_and_never_goes_below_zero(engine: Engine, make_account: AccountFactory) -> None:
    creds = make_account(credits="1")
    account = get_account(engine, creds.name)
    taken = adjust_credits(engine, account.id, -parse_amount("0.4"), "  refund of a wrong top-up  ")
    given = adjust_credits(engine, account.id, parse_amount("0.1"), "goodwill")
    assert (taken.amount, taken.balance_after, given.balance_after) == (-400_000, 600_000, 700_000)
    rows_before = ledger_rows(engine, account.id, None)
    with pytest.raises(BelowZero) as info:
        adjust_credits(engine, account.id, -parse_amount("0.700001"), "too much")
    assert (info.value.balance, info.value.amount) == (700_000, -700_001)
    assert "-0.700001" in str(info.value) and "0.7" in str(info.value)
    assert ledger_rows(engine, account.id, None) == rows_before
    assert get_account(engine, creds.name).balance == 700_000
    assert [(r.kind, r.amount, r.balance_after, r.note) for r in rows_before[:2]] == [
        ("adjustment", 100_000, 700_000, "goodwill"),
        ("adjustment", -400_000, 600_000, "refund of a wrong top-up"),
    ]
    # Down to exactly zero is allowed: the balance covers it.
    assert adjust_credits(engine, account.id, -700_000, "close").balance_after == 0


@pytest.mark.parametrize(("amount", "note", "message"), [(0, "why", "not be zero"), (-1, "  ", "needs a note")])
def test_a_correction_needs_an_amount_and_a_note(
    engine: Engine, make_account: AccountFactory, amount: int, note: str, message: str
) -> None:
    account = get_account(engine, make_account(credits="1").name)
    with pytest.raises(LedgerError, match=message):
        adjust_credits(engine, account.id, amount, note)
    with pytest.raises(LedgerError, match="greater than zero"):
        add_credits(engine, account.id, 0)
    assert len(ledger_rows(engine, account.id, None)) == 1


def test_credit_changes_raise_the_account_change_counter(engine: Engine, make_account: AccountFactory) -> None:
    """Workers drop their cached balances when it moves; a refused correction moves nothing."""
    account = get_account(engine, make_account(credits="1").name)

    def epoch() -> int:
        with engine.connect() as conn:
            return account_epoch.current(conn)

    start = epoch()
    add_credits(engine, account.id, 1)
    adjust_credits(engine, account.id, -1, "back")
    assert epoch() == start + 2
    with pytest.raises(BelowZero):
        adjust_credits(engine, account.id, -parse_amount("2"), "too much")
    assert epoch() == start + 2


def test_ledger_pages_by_row_id(engine: Engine, make_account: AccountFactory) -> None:
    account = get_account(engine, make_account(credits="1").name)
    for i in range(6):
        add_credits(engine, account.id, i + 1)
    everything = ledger_rows(engine, account.id, None)
    assert [r.id for r in everything] == sorted((r.id for r in everything), reverse=True)
    pages, before = [], None
    while True:
        page = ledger_rows(engine, account.id, 3, before=before)
        if not page:
            break
        pages.append(page)
        before = page[-1].id
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [r for p in pages for r in p] == everything


def test_concurrent_corrections_and_charges_never_take_a_balance_below_zero(
    engine: Engine, make_account: AccountFactory
) -> None:
    """Corrections and charges racing on one account: exactly what the balance covers goes through."""
    account = get_account(engine, make_account(credits="1").name)

    def correct(i: int) -> bool:
        try:
            adjust_credits(engine, account.id, -parse_amount("0.1"), f"race {i}")
        except BelowZero:
            return False
        return True

    def lookup(i: int) -> bool:
        try:
            charge(engine, account.id, f"race-{i}", parse_amount("0.1"), 1)
        except InsufficientCredits:
            return False
        return True

    with ThreadPoolExecutor(8) as pool:
        done = list(pool.map(lambda i: correct(i) if i % 2 else lookup(i), range(24)))
    assert sum(done) == 10
    rows = ledger_rows(engine, account.id, None)
    assert get_account(engine, account.name).balance == 0 == sum(r.amount for r in rows)
    assert len(rows) == 11 and min(r.balance_after for r in rows) == 0
