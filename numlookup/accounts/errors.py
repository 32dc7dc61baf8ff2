"""The accounts' errors: every mistake in an account operation (a name, a network, a style) is an ``AccountError``."""

from __future__ import annotations


class AccountError(ValueError):
    """An account operation that cannot be done; the message says why, for the person who asked."""


class NotFound(AccountError):
    """What the operation names does not exist: an account, an entry of its allow-list."""


class UnknownAccount(NotFound):
    """No account of that name; ``where`` (the database, password masked) is named for the CLI's user.

    The admin API answers with the name alone: its clients need not learn the database.
    """

    def __init__(self, name: str, where: str | None = None) -> None:
        super().__init__(f"no account named {name!r}" + (f" in {where}" if where else ""))
        self.name = name


class AccountConflict(AccountError):
    """The operation contradicts what is stored: a name taken, a network already allowed."""
