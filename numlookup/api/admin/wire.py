"""The admin API's request and response bodies as msgspec Structs.

The routes decode and encode with these, and ``/openapi.json`` is generated from
them, so the document and the server agree. Request bodies refuse unknown keys
(unlike the lookup, whose contract ignores them): a misspelt
``allowed_netwroks`` must not quietly open an account to everyone. Amounts are
exact decimal strings, never JSON numbers, whose float reading would round.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from numlookup.accounts.allowlist import EVERYONE
from numlookup.accounts.service import NAME_MAX_LENGTH, NAME_PATTERN, Account
from numlookup.billing.ledger import LedgerKind, LedgerRow
from numlookup.billing.money import AMOUNT_PATTERN, NONZERO_AMOUNT_PATTERN, POSITIVE_AMOUNT_PATTERN, format_amount
from numlookup.status import StyleSetting

Name = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=NAME_MAX_LENGTH,
        pattern=NAME_PATTERN,
        description="The account's name: no control characters, no '/'; surrounding spaces are dropped.",
    ),
]
Amount = Annotated[
    str, msgspec.Meta(pattern=AMOUNT_PATTERN, description="Credits, an exact decimal string: 25, 0.002.")
]
PositiveAmount = Annotated[
    str, msgspec.Meta(pattern=POSITIVE_AMOUNT_PATTERN, description="Credits to add, greater than zero: 25, 0.002.")
]
SignedAmount = Annotated[
    str,
    msgspec.Meta(pattern=NONZERO_AMOUNT_PATTERN, description="Credits to add (2.5) or take away (-2.5); not zero."),
]
# ``format`` names the rule JSON Schema cannot state: host bits zero ("10.0.0.0/8", not "10.0.0.1/8").
Cidr = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        pattern="^[0-9A-Fa-f:.]+(?:/[0-9]{1,3})?$",
        extra_json_schema={"format": "cidr"},
        description="An IPv4 or IPv6 network, host bits zero (10.0.0.0/8, 2001:db8::/48), or one address.",
    ),
]
# Stored as text: PostgreSQL refuses a NUL in it.
Note = Annotated[str, msgspec.Meta(max_length=1000, pattern="^[^\\x00]*$", description="Why, for the ledger.")]
RequiredNote = Annotated[
    str,
    msgspec.Meta(
        max_length=1000, pattern="^[^\\x00]*\\S[^\\x00]*$", description="Why (required, not blank), for the ledger."
    ),
]


class AccountView(msgspec.Struct):
    """An account as the admin API shows it; its secret is never stored, so never shown."""

    name: str
    api_username: str
    enabled: bool
    balance: Annotated[str, msgspec.Meta(description="Credits, an exact decimal string.")]
    price: Annotated[str | None, msgspec.Meta(description="Credits per chargeable number; null: the server's prices.")]
    status_style: Annotated[StyleSetting | None, msgspec.Meta(description="null: the server's default style.")]
    allowed_networks: Annotated[list[str], msgspec.Meta(description="Empty: nobody is let in.")]
    created_at: datetime


class AccountList(msgspec.Struct):
    accounts: list[AccountView]


class AccountWithSecret(msgspec.Struct):
    """A new account, or a new secret: ``api_password`` is shown here once, and stored only as a hash."""

    account: AccountView
    api_password: str


class NewAccount(msgspec.Struct, forbid_unknown_fields=True):
    name: Name
    credits: Amount = "0"
    allowed_networks: Annotated[
        list[Cidr], msgspec.Meta(max_length=100, description="Default: everyone (0.0.0.0/0 and ::/0).")
    ] = msgspec.field(default_factory=lambda: list(EVERYONE))
    status_style: StyleSetting | None = None
    price: Amount | None = None


class NewPrice(msgspec.Struct, forbid_unknown_fields=True):
    price: Annotated[Amount | None, msgspec.Meta(description="null: back to the server's prices.")]


class NewStatusStyle(msgspec.Struct, forbid_unknown_fields=True):
    status_style: Annotated[StyleSetting | None, msgspec.Meta(description="null: back to the server's default.")]


class NetworkEntry(msgspec.Struct, forbid_unknown_fields=True):
    cidr: Cidr


class TopUp(msgspec.Struct, forbid_unknown_fields=True):
    amount: PositiveAmount
    note: Note | None = None


class Adjustment(msgspec.Struct, forbid_unknown_fields=True):
    amount: SignedAmount
    note: RequiredNote


class LedgerEntry(msgspec.Struct):
    id: int
    kind: Annotated[
        LedgerKind, msgspec.Meta(description="lookup: a charged request; credit: a top-up; adjustment: a correction.")
    ]
    request_id: Annotated[str | None, msgspec.Meta(description="The charged lookup's request id.")]
    amount: Annotated[str, msgspec.Meta(description="Signed credits, an exact decimal string: -0.02, 25.")]
    numbers: int
    balance_after: str
    note: str | None
    created_at: datetime


class Booked(msgspec.Struct):
    """A top-up or a correction, committed with its ledger row."""

    name: str
    balance: str
    entry: LedgerEntry


class LedgerPage(msgspec.Struct):
    name: str
    balance: str
    entries: Annotated[list[LedgerEntry], msgspec.Meta(description="Newest first.")]
    next_before: Annotated[
        int | None, msgspec.Meta(description="Pass as `before` for the next (older) page; null: this is the last.")
    ]


def account_view(account: Account) -> AccountView:
    return AccountView(
        name=account.name,
        api_username=account.api_username,
        enabled=account.enabled,
        balance=format_amount(account.balance),
        price=None if account.price is None else format_amount(account.price),
        status_style=account.status_style,
        allowed_networks=list(account.allowed_networks),
        created_at=account.created_at,
    )


def entry_view(row: LedgerRow) -> LedgerEntry:
    return LedgerEntry(
        id=row.id,
        kind=row.kind,
        request_id=row.request_id,
        amount=format_amount(row.amount),
        numbers=row.numbers,
        balance_after=format_amount(row.balance_after),
        note=row.note,
        created_at=row.created_at,
    )
