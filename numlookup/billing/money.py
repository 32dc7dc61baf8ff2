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


def parse_signed_amount(text: str) -> int:
    """``"-1.5"``, ``"2"`` → signed micro-credits: a correction, which may take credits away."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise AmountError(f"{text!r} is not a decimal number") from None
    if not value.is_finite():
        raise AmountError(f"{value} is not a finite amount")
    micros = to_micros(abs(value))
    return -micros if value < 0 else micros


def format_amount(micros: int) -> str:
    """Micro-credits as the shortest exact decimal string: 25000000 → ``"25"``, 2000 → ``"0.002"``."""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS)
    if frac == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:06d}".rstrip("0")


# The spellings the admin API accepts, as JSON Schema patterns (its decoder enforces
# them, and the OpenAPI document shows them): plain decimals, at most 6 places, below
# a billion credits, no sign, exponent or spaces. Each is a subset of what
# ``parse_amount`` reads, so a string that matches always parses.
_WHOLE = "(?:0|[1-9][0-9]{0,8})"
_FRACTION = r"(?:\.[0-9]{1,6})?"
# 0.x with a digit other than 0 among its (at most 6) places.
_NONZERO_FRACTION = (
    r"0\.(?:[1-9][0-9]{0,5}|0[1-9][0-9]{0,4}|00[1-9][0-9]{0,3}|000[1-9][0-9]{0,2}|0000[1-9][0-9]?|00000[1-9])"
)
_POSITIVE = f"(?:[1-9][0-9]{{0,8}}{_FRACTION}|{_NONZERO_FRACTION})"
AMOUNT_PATTERN = f"^{_WHOLE}{_FRACTION}$"  # zero or more: a price, initial credits
POSITIVE_AMOUNT_PATTERN = f"^{_POSITIVE}$"  # a top-up
NONZERO_AMOUNT_PATTERN = f"^-?{_POSITIVE}$"  # a correction, either way
