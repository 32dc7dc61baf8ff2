"""Credits, prices and the ledger: every change of a balance has a ledger row."""

from numlookup.billing.ledger import (
    BelowZero,
    Charge,
    InsufficientCredits,
    LedgerError,
    add_credits,
    adjust_credits,
    charge,
    ledger_rows,
)
from numlookup.billing.money import MICROS, format_amount, parse_amount

__all__ = [
    "MICROS",
    "BelowZero",
    "Charge",
    "InsufficientCredits",
    "LedgerError",
    "add_credits",
    "adjust_credits",
    "charge",
    "format_amount",
    "ledger_rows",
    "parse_amount",
]
