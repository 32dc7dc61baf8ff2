"""Rows handed to the driver as values in their columns' order bind exactly what the same rows as mappings bind."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, insert, select

from numlookup.accounts import get_account
from numlookup.store.driver_rows import DriverRows
from numlookup.store.engine import driver_transaction
from numlookup.store.tables import ledger
from tests.conftest import AccountFactory

COLUMNS = ("request_id", "created_at", "account_id", "kind", "amount", "numbers", "balance_after", "offline")


def _rows(account_id: int, prefix: str) -> list[dict[str, object]]:
    now = datetime(2026, 12, 3, 10, 0, 0, 123456, tzinfo=UTC)
    return [
        {
            "request_id": f"{prefix}-{n}",
            "created_at": now,
            "account_id": account_id,
            "kind": "lookup",
            "amount": -n,
            "numbers": n,
            "balance_after": 1_000 - n,
            "offline": None if n % 2 else n,
        }
        for n in range(1, 6)
    ]


def _stored(engine: Engine, prefix: str) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        found = conn.execute(select(ledger).where(ledger.c.request_id.like(f"{prefix}-%")).order_by(ledger.c.id))
        return [
            tuple(getattr(row, name) if name != "request_id" else row.request_id[3:] for name in COLUMNS)
            for row in found
        ]


def test_values_in_any_column_order_bind_what_their_mappings_bind(engine: Engine, make_account: AccountFactory) -> None:
    payer = get_account(engine, make_account(credits="1").name).id
    for columns in (COLUMNS, tuple(reversed(COLUMNS))):  # the bind order, and one that needs each value moved
        rows = DriverRows(insert(ledger), ledger, columns, engine.dialect)
        mappings = _rows(payer, "map")
        assert rows.processed_values([[row[name] for name in columns] for row in mappings]) == rows.processed(mappings)


def test_values_stored_through_the_driver_are_what_sqlalchemys_insert_stores(
    engine: Engine, make_account: AccountFactory
) -> None:
    payer = get_account(engine, make_account(credits="1").name).id
    rows = DriverRows(insert(ledger), ledger, tuple(reversed(COLUMNS)), engine.dialect)
    with driver_transaction(engine) as (_, cursor):
        values = [[row[name] for name in reversed(COLUMNS)] for row in _rows(payer, "drv")]
        rows.run_on(cursor, rows.processed_values(values))
    with engine.begin() as conn:
        conn.execute(insert(ledger), _rows(payer, "sqa"))
    assert _stored(engine, "drv") == _stored(engine, "sqa") != []
