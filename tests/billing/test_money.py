from __future__ import annotations

from decimal import Decimal

import pytest

from numlookup.billing.money import AmountError, format_amount, parse_amount, to_micros


@pytest.mark.parametrize(
    ("text", "micros"),
    [
        ("25", 25_000_000),
        ("0.002", 2_000),
        ("0.000001", 1),
        ("1.10", 1_100_000),
        (" 3 ", 3_000_000),
        ("1e2", 100_000_000),
    ],
)
def test_parse_amount(text: str, micros: int) -> None:
    assert parse_amount(text) == micros


@pytest.mark.parametrize("text", ["0.0000001", "-1", "abc", "NaN", "Infinity", "", "1e20"])
def test_parse_amount_refuses(text: str) -> None:
    with pytest.raises(AmountError):
        parse_amount(text)


@pytest.mark.parametrize(
    ("micros", "text"), [(25_000_000, "25"), (2_000, "0.002"), (1, "0.000001"), (0, "0"), (-20_000, "-0.02")]
)
def test_format_amount(micros: int, text: str) -> None:
    assert format_amount(micros) == text


def test_sums_stay_exact() -> None:
    assert sum(parse_amount("0.1") for _ in range(10)) == parse_amount("1")
    assert to_micros(Decimal("0.3")) - to_micros(Decimal("0.1")) * 3 == 0
