"""Credits, prices and the ledger: every change of a balance has a ledger row."""

from numlookup.billing.ledger import Charge, InsufficientCredits, add_credits, charge, ledger_rows
from numlookup.billing.money import MICROS, format_amount, parse_amount

__all__ = [
    "MICROS",
    "Charge",
    "InsufficientCredits",
    "add_credits",
    "charge",
    "format_amount",
    "ledger_rows",
    "parse_amount",
]
