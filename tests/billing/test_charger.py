"""The group charger's transaction (the driver's own) against a real database file.

Its BEGIN, statements and COMMIT go to the DB-API connection, its attachments'
statements through SQLAlchemy: these tests hold that both land in one
transaction, that a failure anywhere in it fails exactly the batch's requests
and writes nothing, and that the rows are those one-by-one charges write.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, select

from numlookup.accounts import get_account
from numlookup.billing import InsufficientCredits, charge, ledger_rows
from numlookup.billing.charger import GroupCharger
from numlookup.billing.ledger import Charge, Counts, book_credit
from numlookup.store.tables import ledger
from tests.conftest import AccountFactory


def _columns(engine: Engine, prefix: str) -> list[tuple[object, ...]]:
    """The stored ledger rows of request ids starting with ``prefix``, less their id, time and that prefix."""
    with engine.connect() as conn:
        rows = conn.execute(select(ledger).where(ledger.c.request_id.like(f"{prefix}%")).order_by(ledger.c.id)).all()
    return [
        (r.kind, r.request_id[len(prefix) :], r.amount, r.numbers, r.balance_after, r.offline, r.cached, r.live)
        for r in rows
    ]


async def _charge_all(charger: GroupCharger, charges: list[tuple[int, str, int]]) -> list[Charge | BaseException]:
    return await asyncio.gather(
        *(charger.charge(a, r, amount, 1, counts=Counts(offline=1)) for a, r, amount in charges),
        return_exceptions=True,
    )


@pytest.mark.parametrize("enabled", [True, False], ids=["group-commit", "one-by-one"])
def test_the_charger_writes_what_one_by_one_charges_write(
    engine: Engine, make_account: AccountFactory, enabled: bool
) -> None:
    """Concurrent charges of two accounts, one of which runs out: the same rows, balances and refusals."""

    def pair() -> tuple[int, int]:
        return (
            get_account(engine, make_account(credits="10").name).id,
            get_account(engine, make_account(credits="0.05").name).id,
        )

    def plan(rich: int, poor: int) -> list[tuple[int, str, int]]:
        return [(poor if i % 3 == 0 else rich, f"-{i:02}", 7_000 + i) for i in range(40)]

    charger = GroupCharger(engine, enabled=enabled)
    charges = [(a, "g" + r, amount) for a, r, amount in plan(*pair())]
    if enabled:
        outcomes = asyncio.run(_charge_all(charger, charges))
    else:  # a transaction each, in threads that commit in any order: one at a time, for the same order

        async def one_by_one() -> list[Charge | BaseException]:
            return [(await _charge_all(charger, [one]))[0] for one in charges]

        outcomes = asyncio.run(one_by_one())
    assert charger.stats.charges == 40
    if enabled:
        assert charger.stats.commits < 40  # the charges queued while a commit ran went in together

    expected: list[Charge | InsufficientCredits] = []
    for account_id, request_id, amount in plan(*pair()):  # one transaction each, in the same order
        try:
            expected.append(charge(engine, account_id, "s" + request_id, amount, 1, Counts(offline=1)))
        except InsufficientCredits as exc:
            expected.append(exc)
    assert [type(o) for o in outcomes] == [type(e) for e in expected]
    refused = [o for o in outcomes if isinstance(o, InsufficientCredits)]
    assert 0 < len(refused) < 14  # the poor account paid for some of its charges, not all
    assert [(o.amount, o.balance_after, o.reserved) for o in outcomes if isinstance(o, Charge)] == [
        (e.amount, e.balance_after, e.reserved) for e in expected if isinstance(e, Charge)
    ]
    assert [(o.balance, o.amount) for o in refused] == [
        (e.balance, e.amount) for e in expected if isinstance(e, InsufficientCredits)
    ]
    assert sorted(_columns(engine, "g"), key=str) == sorted(_columns(engine, "s"), key=str)
    with engine.connect() as conn:
        ids = dict(conn.execute(select(ledger.c.request_id, ledger.c.id).where(ledger.c.request_id.like("g%"))).all())
    assert [o.ledger_id for o in outcomes if isinstance(o, Charge)] == [
        ids["g" + r] for (_, r, _), o in zip(plan(0, 0), outcomes, strict=True) if isinstance(o, Charge)
    ]


def test_attachments_commit_in_the_charges_transaction(engine: Engine, make_account: AccountFactory) -> None:
    """What ``store_attached`` writes through SQLAlchemy is committed with the charges, in the same transaction."""
    payer = get_account(engine, make_account(credits="1").name).id
    other = get_account(engine, make_account(credits="1").name)
    seen: list[int] = []
    committed: list[bool] = []

    def store(conn: Connection, attached: list[Any]) -> Any:
        seen.extend(attached)
        for amount in attached:
            book_credit(conn, other.id, amount, "attached")  # SQLAlchemy statements, after the driver's
        return lambda: committed.append(True)

    charger = GroupCharger(engine, store_attached=store)

    async def run() -> list[Charge | BaseException]:
        outcomes = await asyncio.gather(
            charger.charge(payer, "att-1", 10_000, 1, attached=[5]),
            charger.charge(payer, "att-2", 20_000, 2, attached=[7]),
            return_exceptions=True,
        )
        return list(outcomes)

    outcomes = asyncio.run(run())
    assert all(isinstance(o, Charge) for o in outcomes)
    assert sorted(seen) == [5, 7] and committed
    assert get_account(engine, other.name).balance == 1_000_012
    assert [r.amount for r in ledger_rows(engine, payer) if r.kind == "lookup"] == [-20_000, -10_000]


def test_a_failed_commit_fails_its_requests_and_writes_nothing(engine: Engine, make_account: AccountFactory) -> None:
    """An attachment that fails after the charges' statements ran: every charge of the batch fails, nothing stays."""
    payer = get_account(engine, make_account(credits="1").name)
    other = get_account(engine, make_account(credits="1").name)

    class Broken(RuntimeError):
        pass

    def store(conn: Connection, attached: list[Any]) -> Any:
        if attached:
            book_credit(conn, other.id, 1, "attached")
            raise Broken("the attachment's statement failed")
        return None

    charger = GroupCharger(engine, store_attached=store)

    async def run() -> list[Charge | BaseException]:
        first = await charger.charge(payer.id, "ok-0", 1_000, 1)  # a batch of its own, committed
        rest = await asyncio.gather(
            charger.charge(payer.id, "bad-1", 10_000, 1, attached=[1]),
            charger.charge(payer.id, "bad-2", 20_000, 2),
            return_exceptions=True,
        )
        return [first, *rest]

    first, *failed = asyncio.run(run())
    assert isinstance(first, Charge)
    assert [type(o) for o in failed] == [Broken, Broken]
    assert get_account(engine, payer.name).balance == 999_000  # only the first batch's charge
    assert get_account(engine, other.name).balance == 1_000_000  # the attachment's credit was rolled back
    assert [r.request_id for r in ledger_rows(engine, payer.id) if r.kind == "lookup"] == ["ok-0"]
    # The connection went back to the pool clean: the next batch commits.
    after = asyncio.run(_charge_all(GroupCharger(engine), [(payer.id, "next", 1_000)]))
    assert isinstance(after[0], Charge) and after[0].balance_after == 998_000


def test_a_duplicate_request_fails_its_batch_and_charges_nothing(engine: Engine, make_account: AccountFactory) -> None:
    """The ledger's unique request id refuses the driver's INSERT: the batch's debit is rolled back with it."""
    payer = get_account(engine, make_account(credits="1").name)
    charge(engine, payer.id, "dup", 1_000, 1)
    outcomes = asyncio.run(_charge_all(GroupCharger(engine), [(payer.id, "fresh", 2_000), (payer.id, "dup", 3_000)]))
    assert all(isinstance(o, Exception) and not isinstance(o, InsufficientCredits) for o in outcomes)
    assert get_account(engine, payer.name).balance == 999_000
    assert [r.request_id for r in ledger_rows(engine, payer.id) if r.kind == "lookup"] == ["dup"]


def test_a_batch_waits_for_the_charges_the_loop_is_about_to_make(engine: Engine, make_account: AccountFactory) -> None:
    """Requests that reach their charge a loop round or two after the first go in its commit, not the next."""
    payer = get_account(engine, make_account(credits="1").name).id
    charger = GroupCharger(engine)

    async def request(rounds: int, request_id: str) -> Charge:
        for _ in range(rounds):  # the work a request does on the loop before it charges
            await asyncio.sleep(0)
        return await charger.charge(payer, request_id, 1_000, 1)

    async def run() -> list[Charge]:
        return list(await asyncio.gather(*(request(i, f"round-{i}") for i in range(4))))

    charged = asyncio.run(run())
    assert [c.balance_after for c in sorted(charged, key=lambda c: c.ledger_id)] == [999_000, 998_000, 997_000, 996_000]
    assert (charger.stats.commits, charger.stats.charges) == (1, 4)


@pytest.mark.parametrize("cancels", [1, 2])
def test_a_cancelled_charger_still_answers_the_batch_it_is_committing(
    engine: Engine, make_account: AccountFactory, cancels: int
) -> None:
    """The drain cancelled mid-commit (each cancellation of its wait ridden out): the transaction finishes, its
    request gets its charge, the row is there."""
    payer = get_account(engine, make_account(credits="1").name)
    in_commit, release = threading.Event(), threading.Event()

    def store(conn: Connection, attached: list[Any]) -> Any:
        in_commit.set()
        release.wait(10)
        return None

    charger = GroupCharger(engine, store_attached=store)

    async def run() -> tuple[Charge, bool]:
        request = asyncio.ensure_future(charger.charge(payer.id, "kept", 1_000, 1))
        while not in_commit.is_set():
            await asyncio.sleep(0.001)
        worker = charger._worker
        assert worker is not None
        for _ in range(cancels):
            worker.cancel()
            await asyncio.sleep(0.01)
            assert not worker.done()  # still waiting for the transaction under way
        release.set()
        done = await request
        await asyncio.gather(worker, return_exceptions=True)
        return done, worker.cancelled()

    charged, cancelled = asyncio.run(run())
    assert cancelled and charged.balance_after == 999_000
    assert [r.request_id for r in ledger_rows(engine, payer.id) if r.kind == "lookup"] == ["kept"]


def test_one_charger_serves_one_event_loop_after_another(engine: Engine, make_account: AccountFactory) -> None:
    """The charger keeps the loop its charges came from (not asked again per charge): a new loop is noticed.

    A test suite, the CLI and a server restart in one process each run their own
    loop; a future made on the previous one would never be settled by this one.
    """
    payer = get_account(engine, make_account(credits="1").name).id
    charger = GroupCharger(engine)

    async def charge(request_id: str) -> Charge:
        return await charger.charge(payer, request_id, 1_000, 1)

    first = asyncio.run(charge("loop-1"))
    second = asyncio.run(charge("loop-2"))
    third = None

    def in_a_thread() -> None:
        nonlocal third
        third = asyncio.run(charge("loop-3"))

    worker = threading.Thread(target=in_a_thread)
    worker.start()
    worker.join(30)
    assert third is not None
    assert [first.balance_after, second.balance_after, third.balance_after] == [999_000, 998_000, 997_000]
    assert (charger.stats.commits, charger.stats.charges) == (3, 3)


def test_close_ends_the_charges_thread_and_a_later_charge_starts_another(
    engine: Engine, make_account: AccountFactory
) -> None:
    payer = get_account(engine, make_account(credits="1").name).id
    charger = GroupCharger(engine)

    def charges_threads() -> set[threading.Thread]:
        return {t for t in threading.enumerate() if t.name == "numlookup-charges"}

    async def charge_and_close(request_id: str) -> tuple[Charge, threading.Thread]:
        others = charges_threads()  # other tests' chargers, never closed, may have left theirs
        charged = await charger.charge(payer, request_id, 1_000, 1)
        (started,) = charges_threads() - others
        await charger.close()
        return charged, started

    first, thread = asyncio.run(charge_and_close("before-close"))
    thread.join(10)
    assert not thread.is_alive()
    second, another = asyncio.run(charge_and_close("after-close"))
    another.join(10)
    assert another is not thread and not another.is_alive()
    assert [first.balance_after, second.balance_after] == [999_000, 998_000]
