"""Reservations on a real database: what a job holds no charge may spend; a settlement takes only what was held."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, func, select

from numlookup.accounts import get_account
from numlookup.billing import InsufficientCredits, charge, ledger_rows
from numlookup.billing.ledger import Debit, debit_batch
from numlookup.billing.reservations import ReservationError, release, reserve, settle
from numlookup.store.engine import write_transaction
from numlookup.store.tables import ledger
from tests.conftest import AccountFactory


def held(engine: Engine, name: str) -> tuple[int, int]:
    account = get_account(engine, name)
    return account.balance, account.reserved


def ledger_sum(engine: Engine, account_id: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(select(func.sum(ledger.c.amount)).where(ledger.c.account_id == account_id)).scalar_one()
        )


def test_a_reservation_is_refused_beyond_the_spendable_balance(engine: Engine, make_account: AccountFactory) -> None:
    name = make_account(credits="1").name
    account = get_account(engine, name)
    with write_transaction(engine) as conn:
        reserve(conn, account.id, 700_000)
    with pytest.raises(InsufficientCredits) as refused, write_transaction(engine) as conn:
        reserve(conn, account.id, 300_001)
    assert (refused.value.balance, refused.value.reserved, refused.value.spendable) == (1_000_000, 700_000, 300_000)
    assert held(engine, name) == (1_000_000, 700_000)  # the refusal changed nothing


def test_sync_charges_cannot_spend_what_a_job_holds(engine: Engine, make_account: AccountFactory) -> None:
    name = make_account(credits="1").name
    account = get_account(engine, name)
    with write_transaction(engine) as conn:
        reserve(conn, account.id, 950_000)
    charged = charge(engine, account.id, "fits", 50_000, 5)
    assert (charged.balance_after, charged.reserved) == (950_000, 950_000)
    with pytest.raises(InsufficientCredits) as refused:
        charge(engine, account.id, "too-much", 10_000, 1)
    assert refused.value.spendable == 0
    with write_transaction(engine) as conn:  # a group commit's batch is held to the same rule
        outcomes = debit_batch(conn, [Debit(account.id, "b1", 10_000, 1)])
    assert isinstance(outcomes[0], InsufficientCredits)
    assert held(engine, name) == (950_000, 950_000)


def test_a_settlement_charges_from_the_reservation_and_releases_the_rest(
    engine: Engine, make_account: AccountFactory
) -> None:
    name = make_account(credits="2").name
    account = get_account(engine, name)
    with write_transaction(engine) as conn:
        reserve(conn, account.id, 1_500_000)
    with write_transaction(engine) as conn:
        settle(conn, account.id, "job_x/0", 400_000, 40, 500_000)  # held 0.5 for the chunk, charged 0.4
        settle(conn, account.id, "job_x/1", 0, 0, 200_000)  # nothing chargeable: no ledger row
    assert held(engine, name) == (1_600_000, 800_000)
    rows = [r for r in ledger_rows(engine, account.id, None) if r.kind == "job"]
    assert [(r.request_id, r.amount, r.numbers, r.balance_after) for r in rows] == [
        ("job_x/0", -400_000, 40, 1_600_000)
    ]
    with write_transaction(engine) as conn:
        release(conn, account.id, 800_000)
    assert held(engine, name) == (1_600_000, 0)
    assert ledger_sum(engine, account.id) == 1_600_000  # the ledger still adds up to the balance


def test_a_settlement_never_takes_more_than_was_held(engine: Engine, make_account: AccountFactory) -> None:
    name = make_account(credits="1").name
    account = get_account(engine, name)
    with write_transaction(engine) as conn:
        reserve(conn, account.id, 100_000)
    with pytest.raises(ReservationError), write_transaction(engine) as conn:
        settle(conn, account.id, "job_y/0", 100_001, 1, 100_000)  # a charge above its chunk's reserve
    with pytest.raises(ReservationError), write_transaction(engine) as conn:
        settle(conn, account.id, "job_y/0", 10_000, 1, 200_000)  # a reserve the account does not hold
    with pytest.raises(ReservationError), write_transaction(engine) as conn:
        release(conn, account.id, 100_001)
    assert held(engine, name) == (1_000_000, 100_000)
    with write_transaction(engine) as conn:
        settle(conn, account.id, "job_y/0", 10_000, 1, 100_000)
    with pytest.raises(Exception) as twice, write_transaction(engine) as conn:
        reserve(conn, account.id, 10_000)
        settle(conn, account.id, "job_y/0", 10_000, 1, 10_000)  # the same chunk again: its ledger row exists
    assert "unique" in str(twice.value).lower()
    assert held(engine, name) == (990_000, 0)
