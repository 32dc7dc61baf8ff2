"""The accounts' one error type: every mistake in an account operation (a name, a network, a style) is one."""

from __future__ import annotations


class AccountError(ValueError):
    """An account operation that cannot be done; the message says why, for the person who asked."""
