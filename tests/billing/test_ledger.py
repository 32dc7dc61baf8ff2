"""Charges and credits against a real SQLite file."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from numlookup.accounts import get_account
from numlookup.billing import InsufficientCredits, add_credits, charge, ledger_rows
from tests.conftest import AccountFactory


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
