"""Charging requests and crediting accounts, each in one transaction with its ledger row.

The balance check and the debit are one conditional UPDATE, so concurrent
requests from any number of connections or processes can never take the balance
below zero: the database serialises them, and the loser sees zero rows updated.
An operator's correction that takes credits away is held to the same UPDATE.

Ledger rows have three kinds: ``lookup`` (a charged request), ``credit`` (an
operator's top-up) and ``adjustment`` (an operator's correction, either way, with
a note saying why). The balance is always the sum of an account's rows.

A charge's row also counts its numbers by answer class (:class:`Counts`), for
the usage charts (``billing.rollup``): columns of the same row, in the same
INSERT, so the hot charge path runs no statement more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, cast

import msgspec
from sqlalchemy import Connection, Dialect, Engine, bindparam, insert, select, update

from numlookup.billing.money import format_amount
from numlookup.store import account_epoch
from numlookup.store.driver_rows import DriverRows, per_dialect
from numlookup.store.engine import write_transaction
from numlookup.store.tables import accounts, ledger

LedgerKind = Literal["lookup", "credit", "adjustment", "job"]  # job: a bulk job chunk's settlement


class LedgerError(ValueError):
    """An operator's top-up or correction refused before anything changed; the message says why."""


class BelowZero(LedgerError):
    """A correction that would take the balance below zero; nothing was changed."""

    def __init__(self, balance: int, amount: int) -> None:
        super().__init__(
            f"a correction of {format_amount(amount)} would take the balance of {format_amount(balance)} below zero"
        )
        self.balance = balance
        self.amount = amount


class InsufficientCredits(Exception):
    """The spendable balance (the balance less what bulk jobs hold) does not cover the charge; nothing was changed."""

    def __init__(self, balance: int, amount: int, reserved: int = 0) -> None:
        super().__init__(f"balance {balance} ({reserved} reserved) does not cover {amount}")
        self.balance = balance
        self.amount = amount
        self.reserved = reserved

    @property
    def spendable(self) -> int:
        return self.balance - self.reserved


@dataclass(frozen=True, slots=True)
class Counts:
    """A charge's numbers by answer class: ``offline + cached + live`` are the charged numbers.

    ``invalid`` counts the distinct inputs of the request (or job chunk) that are
    not valid numbers: answered INVALID and charged nothing, but part of the
    traffic a customer sent.
    """

    offline: int = 0
    cached: int = 0
    live: int = 0
    invalid: int = 0

    def columns(self) -> dict[str, int]:
        """The ledger columns of these counts."""
        return {"offline": self.offline, "cached": self.cached, "live": self.live, "invalid": self.invalid}


# The class columns of a row that counts nothing by class (credits, adjustments, older callers).
_NO_COUNTS: Mapping[str, int | None] = {"offline": None, "cached": None, "live": None, "invalid": None}


def _count_columns(counts: Counts | None) -> Mapping[str, int | None]:
    return _NO_COUNTS if counts is None else counts.columns()


class Charge(msgspec.Struct, frozen=True):
    """A committed ledger row; ``reserved`` is what bulk jobs held of the balance after it.

    Why a Struct: a group commit makes one per charge, and where the ledger writer
    process commits, the event loop makes them from its answer; a frozen
    dataclass's ``__init__`` took 2.3 µs each, a Struct's is made in C.
    """

    ledger_id: int
    amount: int
    balance_after: int
    reserved: int = 0


# The charge path's statements, built once with bound parameters. Why: building a
# statement per charge and deriving its cache key cost more than SQLAlchemy's compiled
# cache saved; a statement built once is compiled once per dialect and then only
# looked up, and the charges' worker thread holds the GIL (the event loop's) less.
_TAKE = (
    update(accounts)
    .where(
        accounts.c.id == bindparam("take_account"),
        accounts.c.balance - accounts.c.reserved >= bindparam("take_amount"),
    )
    .values(balance=accounts.c.balance - bindparam("take_amount"))
    .returning(accounts.c.balance, accounts.c.reserved)
)
_BALANCES = select(accounts.c.balance, accounts.c.reserved).where(accounts.c.id == bindparam("take_account"))
_LEDGER_ROWS = insert(ledger).returning(ledger.c.id, sort_by_parameter_order=True)
# The columns of a charge's ledger row, in the order ``debit_batch`` makes its values.
_CHARGE_COLUMNS = (
    "account_id",
    "kind",
    "request_id",
    "amount",
    "numbers",
    "balance_after",
    "created_at",
    "offline",
    "cached",
    "live",
    "invalid",
)
_REQUEST_ID_AT = _CHARGE_COLUMNS.index("request_id")
# The dialects whose drivers take the compiled SQL below as SQLAlchemy hands it to them.
COMPILED_DIALECTS = ("sqlite", "postgresql")


class _Statements:
    """A group commit's debit and ledger INSERT for one dialect, compiled once, run on the driver's cursor.

    Why: with ``RETURNING`` in parameter order, SQLAlchemy runs a multi-row
    INSERT on SQLite one row at a time (SQLite does not promise the order of
    ``RETURNING`` rows), each with its own execution context and parameter
    building: about 25 µs of the charges' thread per charge, which holds the
    event loop's GIL meanwhile. Here the rows go through the driver's
    ``executemany`` (one C loop on SQLite, one pipeline on psycopg), on the DB-API
    cursor of the caller's transaction: even ``exec_driver_sql`` cost some 30 µs
    a statement (an execution context, a result object, the cursor events), more
    than SQLite took to run it. The ids: on SQLite, which numbers a row one past
    the table's largest id, the rows written under the write lock are numbered
    on from the largest id read before them, and that is checked against the
    last id inserted; elsewhere (or if that check fails) they are read back in
    one ``SELECT … IN`` by their request ids (unique in the ledger). The rows go
    through ``store.driver_rows``, as the live cache's upsert does;
    tests/billing/test_ledger.py proves the rows are those ``insert(ledger)`` writes.
    """

    def __init__(self, dialect: Dialect) -> None:
        take = _TAKE.compile(dialect=dialect)
        self.take_sql = take.string
        self.take_order = tuple(take.positiontup or ()) if take.positional else None
        self.rows = DriverRows(insert(ledger), ledger, _CHARGE_COLUMNS, dialect)
        self.dialect = dialect
        self.numbered_on = dialect.name == "sqlite"  # ids one past the largest, under the write lock
        self.ids_sql: dict[int, tuple[str, tuple[str, ...] | None]] = {}  # by the power of two of its ids

    def take(self, cursor: Any, account_id: int, amount: int) -> tuple[int, int] | None:
        """:func:`_take` on the driver's cursor."""
        values = {"take_account": account_id, "take_amount": amount}
        parameters = values if self.take_order is None else tuple(values[name] for name in self.take_order)
        cursor.execute(self.take_sql, parameters)
        rows = cursor.fetchall()
        return None if not rows else (int(rows[0][0]), int(rows[0][1]))

    def insert(self, cursor: Any, rows: Sequence[tuple[object, ...]]) -> list[int]:
        """Insert charge rows (values in ``_CHARGE_COLUMNS`` order) in the caller's transaction; their ids, in order."""
        largest = None
        if self.numbered_on:
            cursor.execute("SELECT max(id) FROM ledger")
            largest = cursor.fetchone()[0] or 0
        self.rows.run_on(cursor, self.rows.processed_values(rows))
        if largest is not None:
            cursor.execute("SELECT last_insert_rowid()")
            last = int(cursor.fetchone()[0])
            if last == largest + len(rows):  # every row numbered on from the largest id, in order
                return list(range(largest + 1, last + 1))
        return self._ids(cursor, [row[_REQUEST_ID_AT] for row in rows])

    def _ids(self, cursor: Any, request_ids: list[object]) -> list[int]:
        """The ledger ids of the rows of ``request_ids`` (unique in the ledger), in their order."""
        sql, order = self._ids_of(len(request_ids))
        size = 1 << max(len(request_ids) - 1, 0).bit_length()
        padded = request_ids + request_ids[-1:] * (size - len(request_ids))  # IN (…) may name one twice
        named = {f"request_id_{i}": request_id for i, request_id in enumerate(padded)}
        parameters: tuple[object, ...] | dict[str, object] = (
            named if order is None else tuple(named[name] for name in order)
        )
        cursor.execute(sql, parameters)
        ids = {request_id: ledger_id for ledger_id, request_id in cursor.fetchall()}
        return [int(ids[request_id]) for request_id in request_ids]

    def _ids_of(self, count: int) -> tuple[str, tuple[str, ...] | None]:
        """``SELECT id, request_id … WHERE request_id IN (…)`` for ``count`` ids, and its positional bind order.

        Compiled once per power of two: a group commit holds 1 to 512 charges, and
        ten statements cover them all (the ids padded with the last one).
        """
        size = 1 << max(count - 1, 0).bit_length()
        found = self.ids_sql.get(size)
        if found is None:
            names = [f"request_id_{i}" for i in range(size)]
            statement = select(ledger.c.id, ledger.c.request_id).where(
                ledger.c.request_id.in_([bindparam(name) for name in names])
            )
            compiled = statement.compile(dialect=self.dialect)
            order = tuple(compiled.positiontup or ()) if compiled.positional else None
            if sorted(order if order is not None else compiled.binds) != sorted(names):
                raise RuntimeError(f"the ledger's id select binds {order or list(compiled.binds)}, not {names}")
            found = self.ids_sql[size] = (compiled.string, order)
        return found


_statements_of = per_dialect(_Statements)


def _statements(conn: Connection) -> _Statements | None:
    """The compiled statements of the connection's dialect; None for a database they are not written for."""
    return _statements_of(conn.dialect) if conn.dialect.name in COMPILED_DIALECTS else None


def _cursor(conn: Connection, cursor: Any | None) -> Any:
    """The driver cursor of the caller's transaction: the one given, or a new one of ``conn``'s DB-API connection."""
    return cursor if cursor is not None else conn.connection.driver_connection.cursor()  # type: ignore[union-attr]


def _take(conn: Connection, account_id: int, amount: int, cursor: Any | None = None) -> tuple[int, int] | None:
    """The conditional debit: (balance, reserved) after it, or None (nothing changed) if it is not covered.

    What bulk jobs have reserved is not the request's to spend: the condition is
    on ``balance - reserved``, in the same row as the balance, so a reservation
    and a charge committed at the same moment can never both take the same credits.
    """
    compiled = _statements(conn)
    if compiled is not None:
        return compiled.take(_cursor(conn, cursor), account_id, amount)
    row = conn.execute(_TAKE, {"take_account": account_id, "take_amount": amount}).first()
    return None if row is None else (int(row.balance), int(row.reserved))


def balances(conn: Connection, account_id: int) -> tuple[int, int]:
    """The account's balance and what bulk jobs hold of it."""
    row = conn.execute(_BALANCES, {"take_account": account_id}).one()
    return int(row.balance), int(row.reserved)


def debit(
    conn: Connection,
    account_id: int,
    request_id: str,
    amount: int,
    numbers: int,
    counts: Counts | None = None,
    cursor: Any | None = None,
) -> Charge:
    """The charge's statements inside the caller's transaction: the conditional debit and the ledger row.

    ``cursor``: the transaction's driver cursor, as ``debit_batch`` has one. Raises
    InsufficientCredits having changed nothing (the UPDATE matched no row).
    """
    now = datetime.now(UTC)
    taken = _take(conn, account_id, amount, cursor)
    if taken is None:
        balance, held = balances(conn, account_id)
        raise InsufficientCredits(balance, amount, held)
    balance_after, reserved = taken
    ledger_id = conn.execute(
        insert(ledger)
        .values(
            account_id=account_id,
            kind="lookup",
            request_id=request_id,
            amount=-amount,
            numbers=numbers,
            balance_after=balance_after,
            created_at=now,
            **_count_columns(counts),
        )
        .returning(ledger.c.id)
    ).scalar_one()
    return Charge(ledger_id=ledger_id, amount=amount, balance_after=balance_after, reserved=reserved)


class Debiting(Protocol):
    """What ``debit_batch`` reads of each charge: a :class:`Debit`, or the group charger's queued charge itself.

    Why a protocol: the charger's queue entries carry these fields already, and
    copying each into a ``Debit`` per commit was work on the charges' thread for nothing.
    """

    @property
    def account_id(self) -> int: ...
    @property
    def request_id(self) -> str: ...
    @property
    def amount(self) -> int: ...
    @property
    def numbers(self) -> int: ...
    @property
    def counts(self) -> Counts | None: ...


@dataclass(frozen=True, slots=True)
class Debit:
    """One request's charge, as a batch carries it."""

    account_id: int
    request_id: str
    amount: int
    numbers: int
    counts: Counts | None = None


def debit_batch(
    conn: Connection, debits: Sequence[Debiting], cursor: Any | None = None
) -> list[Charge | InsufficientCredits]:
    """Many requests' charges inside the caller's transaction, with the outcome of each, in order.

    ``cursor``, a DB-API cursor of ``conn``'s connection (``store.engine.driver_transaction``
    hands one out), runs the batch's statements; without it one is opened.

    Why: statement by statement a charge costs two round trips through the SQL
    layer (about 0.2 ms of a worker's time); a group commit of 500 spent 0.1 s
    on them. Here each account is debited once, with the sum of its charges, by
    the same conditional UPDATE, and the ledger rows go in as one multi-row
    INSERT. Each row's ``balance_after`` is what one-by-one debits in queue
    order would have written. If the balance does not cover the sum, that
    account's charges are made one by one, in queue order, and the ones it does
    not cover fail alone, as before.
    """
    compiled = _statements(conn)
    if compiled is not None:
        cursor = _cursor(conn, cursor)
    outcomes: list[Charge | InsufficientCredits | None] = [None] * len(debits)
    by_account: dict[int, list[int]] = {}
    for i, d in enumerate(debits):
        by_account.setdefault(d.account_id, []).append(i)
    now = datetime.now(UTC)
    rows: list[tuple[object, ...]] = []  # in _CHARGE_COLUMNS order
    placed: list[tuple[int, int, int]] = []  # per row: the debit it books, the balance after it, reserved
    for account_id, indices in by_account.items():
        total = sum(debits[i].amount for i in indices)
        taken = _take(conn, account_id, total, cursor)
        if taken is None:
            for i in indices:
                d = debits[i]
                try:
                    outcomes[i] = debit(conn, d.account_id, d.request_id, d.amount, d.numbers, d.counts, cursor)
                except InsufficientCredits as exc:
                    outcomes[i] = exc
            continue
        after, reserved = taken
        balance = after + total
        for i in indices:
            d = debits[i]
            balance -= d.amount
            c = d.counts
            # Every row carries every class column: one multi-row INSERT.
            classes = (None, None, None, None) if c is None else (c.offline, c.cached, c.live, c.invalid)
            rows.append((account_id, "lookup", d.request_id, -d.amount, d.numbers, balance, now, *classes))
            placed.append((i, balance, reserved))
    if rows:
        ids = (
            compiled.insert(cursor, rows)
            if compiled is not None
            else conn.execute(_LEDGER_ROWS, [dict(zip(_CHARGE_COLUMNS, row, strict=True)) for row in rows])
            .scalars()
            .all()
        )
        for (i, balance_after, reserved), ledger_id in zip(placed, ids, strict=True):
            outcomes[i] = Charge(
                ledger_id=ledger_id, amount=debits[i].amount, balance_after=balance_after, reserved=reserved
            )
    done = [o for o in outcomes if o is not None]
    assert len(done) == len(debits)
    return done


def charge(
    engine: Engine,
    account_id: int,
    request_id: str,
    amount: int,
    numbers: int,
    counts: Counts | None = None,
) -> Charge:
    """Debit ``amount`` micro-credits for ``numbers`` lookups of ``request_id``; returns once committed."""
    with write_transaction(engine) as conn:
        return debit(conn, account_id, request_id, amount, numbers, counts)


def _book(conn: Connection, account_id: int, kind: LedgerKind, amount: int, note: str | None) -> Charge:
    """Move the balance by ``amount`` (signed) and write its ledger row, inside the caller's transaction.

    Taking credits away is the charges' conditional UPDATE: it matches no row (and
    changes nothing) when the balance does not cover it, so no interleaving of
    charges and corrections can take a balance below zero. Raises ``BelowZero``.
    """
    now = datetime.now(UTC)
    query = update(accounts).where(accounts.c.id == account_id)
    if amount < 0:
        query = query.where(accounts.c.balance >= -amount)
    balance_after = conn.execute(
        query.values(balance=accounts.c.balance + amount, updated_at=now).returning(accounts.c.balance)
    ).scalar()
    if balance_after is None:
        balance = conn.execute(select(accounts.c.balance).where(accounts.c.id == account_id)).scalar_one()
        raise BelowZero(balance, amount)
    ledger_id = conn.execute(
        insert(ledger)
        .values(
            account_id=account_id,
            kind=kind,
            amount=amount,
            numbers=0,
            balance_after=balance_after,
            note=note,
            created_at=now,
        )
        .returning(ledger.c.id)
    ).scalar_one()
    account_epoch.bump(conn)  # workers' cached balances are now wrong: tell them
    return Charge(ledger_id=ledger_id, amount=amount, balance_after=balance_after)


def book_credit(conn: Connection, account_id: int, amount: int, note: str | None = None) -> Charge:
    """A top-up inside the caller's transaction (a new account's initial credits commit with it)."""
    if amount <= 0:
        raise LedgerError("a top-up must be greater than zero")
    return _book(conn, account_id, "credit", amount, note)


def add_credits(engine: Engine, account_id: int, amount: int, note: str | None = None) -> Charge:
    """Credit an account (an operator's top-up), with its ledger row; ``amount`` must be positive."""
    with write_transaction(engine) as conn:
        return book_credit(conn, account_id, amount, note)


def adjust_credits(engine: Engine, account_id: int, amount: int, note: str) -> Charge:
    """An operator's correction, either way, as its own ``adjustment`` row; ``note`` (why) is required.

    Why a kind of its own: a top-up is money received, a correction is a mistake
    put right (a refund, a wrong top-up taken back), and the ledger should tell
    them apart. Refused with ``BelowZero``, nothing changed, if it would take the
    balance below zero.
    """
    if amount == 0:
        raise LedgerError("a correction must not be zero")
    if not note.strip():
        raise LedgerError("a correction needs a note saying why")
    with write_transaction(engine) as conn:
        return _book(conn, account_id, "adjustment", amount, note.strip())


@dataclass(frozen=True, slots=True)
class LedgerRow:
    id: int
    kind: LedgerKind
    request_id: str | None
    amount: int
    numbers: int
    balance_after: int
    note: str | None
    created_at: datetime
    counts: Counts | None = None  # a charge's numbers by answer class; None on other rows and older charges


def ledger_rows(engine: Engine, account_id: int, limit: int | None = 20, before: int | None = None) -> list[LedgerRow]:
    """The newest rows first; with ``before``, only rows older than that row id (the next page)."""
    query = select(ledger).where(ledger.c.account_id == account_id).order_by(ledger.c.id.desc())
    if before is not None:
        query = query.where(ledger.c.id < before)
    if limit is not None:
        query = query.limit(limit)
    with engine.connect() as conn:
        return [
            LedgerRow(
                id=r.id,
                kind=cast(LedgerKind, r.kind),
                request_id=r.request_id,
                amount=r.amount,
                numbers=r.numbers,
                balance_after=r.balance_after,
                note=r.note,
                created_at=r.created_at,
                counts=None
                if r.offline is None
                else Counts(offline=r.offline, cached=r.cached or 0, live=r.live or 0, invalid=r.invalid or 0),
            )
            for r in conn.execute(query)
        ]
