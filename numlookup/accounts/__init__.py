"""Accounts, their API secrets and IP allow-lists."""

from numlookup.accounts.errors import AccountError
from numlookup.accounts.service import (
    Account,
    AuthFailure,
    NewCredentials,
    allow_network,
    authenticate,
    create_account,
    deny_network,
    get_account,
    list_accounts,
    rotate_secret,
    set_enabled,
    set_price,
    set_status_style,
)

__all__ = [
    "Account",
    "AccountError",
    "AuthFailure",
    "NewCredentials",
    "allow_network",
    "authenticate",
    "create_account",
    "deny_network",
    "get_account",
    "list_accounts",
    "rotate_secret",
    "set_enabled",
    "set_price",
    "set_status_style",
]
