"""The account change counter: raised by every change a cached account could miss.

Workers cache accounts so that a request needs no database round trip to be
authenticated (see ``accounts.cache``). Every operation that changes what
authentication or the balance pre-check reads (an account created, disabled,
re-keyed, re-priced, its allow-list edited, credits added) raises the counter in
its own transaction; workers poll it and drop their cache when it moves.
Charges do not raise it: the charge itself is the authoritative balance check.
"""

from __future__ import annotations

from sqlalchemy import Connection, select, update

from numlookup.store.tables import account_epoch


def bump(conn: Connection) -> None:
    """Raise the counter inside the caller's transaction, so the change and its signal commit together."""
    conn.execute(update(account_epoch).where(account_epoch.c.id == 1).values(epoch=account_epoch.c.epoch + 1))


def current(conn: Connection) -> int:
    return int(conn.execute(select(account_epoch.c.epoch).where(account_epoch.c.id == 1)).scalar_one())
