"""Accounts, their API secrets and IP allow-lists."""

from numlookup.accounts.errors import AccountConflict, AccountError, NotFound, UnknownAccount
from numlookup.accounts.service import (
    Account,
    AuthFailure,
    NewCredentials,
    allow_network,
    authenticate,
    correct,
    create_account,
    deny_network,
    get_account,
    list_accounts,
    rotate_secret,
    set_enabled,
    set_price,
    set_status_style,
    top_up,
)

__all__ = [
    "Account",
    "AccountConflict",
    "AccountError",
    "AuthFailure",
    "NewCredentials",
    "NotFound",
    "UnknownAccount",
    "allow_network",
    "authenticate",
    "correct",
    "create_account",
    "deny_network",
    "get_account",
    "list_accounts",
    "rotate_secret",
    "set_enabled",
    "set_price",
    "set_status_style",
    "top_up",
]
