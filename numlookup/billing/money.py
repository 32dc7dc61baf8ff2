"""Exact money: amounts are integers of micro-credits (1 credit = 1,000,000).

Six decimal places cover per-number prices like 0.0005 with room to spare, and
integers add up exactly in SQL on every backend, which Decimal columns do not
guarantee on SQLite.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

MICROS = 1_000_000
_MAX = 10**15  # a billion credits; keeps every product well inside a signed 64-bit column


class AmountError(ValueError):
    """An amount that is not a non-negative decimal with at most six decimal places."""


def to_micros(value: Decimal) -> int:
    """Exact conversion; refuses what would need rounding."""
    if not value.is_finite():
        raise AmountError(f"{value} is not a finite amount")
    micros = value * MICROS
    if micros != micros.to_integral_value():
        raise AmountError(f"{value} has more than 6 decimal places")
    result = int(micros)
    if result < 0:
        raise AmountError(f"{value} is negative")
    if result > _MAX:
        raise AmountError(f"{value} is too large")
    return result


def parse_amount(text: str) -> int:
    """``"25"``, ``"0.002"`` → micro-credits."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise AmountError(f"{text!r} is not a decimal number") from None
    return to_micros(value)


def format_amount(micros: int) -> str:
    """Micro-credits as the shortest exact decimal string: 25000000 → ``"25"``, 2000 → ``"0.002"``."""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS)
    if frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:06d}".rstrip("0")
