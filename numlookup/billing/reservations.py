"""Credits held for bulk jobs: reserved at submit, charged chunk by chunk from the reservation, the rest released.

Why a reservation at all: a job is charged as its chunks are processed, over
minutes or hours, and the client must know at submit whether it can pay. So the
submit holds the dearest outcome of the job's numbers (``reserve``), each chunk
is charged exactly from what was held for it (``settle``, one ledger row naming
the job, in the transaction that stores the chunk's results), and what a job no
longer needs goes back (``release``) when it ends.

The hold is a column of the account's own row (``accounts.reserved``), never a
ledger row: the balance changes only by charges, so the ledger still adds up to
the balance. Every spend checks ``balance - reserved`` in the same conditional
UPDATE that spends, so neither a sync request nor another job can spend what a
job holds, on any number of nodes. These statements run inside the caller's
transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, insert, update

from numlookup.billing.ledger import Counts, InsufficientCredits, LedgerKind, balances
from numlookup.store.tables import accounts, ledger

JOB_KIND: LedgerKind = "job"  # the ledger kind of a job's chunk charges


class ReservationError(RuntimeError):
    """A settlement or release that would take more than is held: a bug, so the transaction must not commit."""


def reserve(conn: Connection, account_id: int, amount: int) -> None:
    """Hold ``amount`` of the account's spendable balance; InsufficientCredits (nothing changed) if it falls short."""
    held = conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id, accounts.c.balance - accounts.c.reserved >= amount)
        .values(reserved=accounts.c.reserved + amount)
        .returning(accounts.c.id)
    ).first()
    if held is None:
        balance, reserved = balances(conn, account_id)
        raise InsufficientCredits(balance, amount, reserved)


def release(conn: Connection, account_id: int, amount: int) -> None:
    """Give back ``amount`` of what the account holds for jobs."""
    if amount == 0:
        return
    done = conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id, accounts.c.reserved >= amount)
        .values(reserved=accounts.c.reserved - amount)
    )
    if done.rowcount != 1:
        raise ReservationError(f"account {account_id} holds less than the {amount} released")


def settle(
    conn: Connection,
    account_id: int,
    reference: str,
    amount: int,
    numbers: int,
    held: int,
    now: datetime | None = None,
    counts: Counts | None = None,
) -> int | None:
    """Charge ``amount`` for ``numbers`` lookups out of ``held`` (what was reserved for them), releasing the rest.

    One ledger row (kind ``job``, ``request_id`` = ``reference``, unique: a chunk
    can never be charged twice) when ``amount`` is not zero; returns its id.
    """
    if amount > held:
        raise ReservationError(f"{reference}: the charge {amount} exceeds the {held} reserved for it")
    balance_after = conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id, accounts.c.reserved >= held)
        .values(balance=accounts.c.balance - amount, reserved=accounts.c.reserved - held)
        .returning(accounts.c.balance)
    ).scalar()
    if balance_after is None:
        raise ReservationError(f"{reference}: account {account_id} holds less than the {held} settled")
    if amount == 0:
        return None
    ledger_id: int = conn.execute(
        insert(ledger)
        .values(
            account_id=account_id,
            kind=JOB_KIND,
            request_id=reference,
            amount=-amount,
            numbers=numbers,
            balance_after=balance_after,
            created_at=now or datetime.now(UTC),
            offline=None if counts is None else counts.offline,
            cached=None if counts is None else counts.cached,
            live=None if counts is None else counts.live,
            invalid=None if counts is None else counts.invalid,
        )
        .returning(ledger.c.id)
    ).scalar_one()
    return ledger_id
