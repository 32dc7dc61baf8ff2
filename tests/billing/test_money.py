from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from numlookup.billing.money import (
    AMOUNT_PATTERN,
    NONZERO_AMOUNT_PATTERN,
    POSITIVE_AMOUNT_PATTERN,
    AmountError,
    format_amount,
    parse_amount,
    parse_signed_amount,
    to_micros,
)


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


@pytest.mark.parametrize(("text", "micros"), [("-5", -5_000_000), (" -0.000001 ", -1), ("2.5", 2_500_000), ("0", 0)])
def test_parse_signed_amount(text: str, micros: int) -> None:
    assert parse_signed_amount(text) == micros


@pytest.mark.parametrize("text", ["--1", "- 1", "-0.0000001", "-abc", ""])
def test_parse_signed_amount_refuses(text: str) -> None:
    with pytest.raises(AmountError):
        parse_signed_amount(text)


@pytest.mark.parametrize(
    ("pattern", "least"),
    [(AMOUNT_PATTERN, 0), (POSITIVE_AMOUNT_PATTERN, 1), (NONZERO_AMOUNT_PATTERN, None)],
    ids=["amount", "positive", "nonzero"],
)
@given(data=st.data())
@settings(max_examples=300, deadline=None)
def test_every_string_the_admin_patterns_allow_parses(pattern: str, least: int | None, data: st.DataObject) -> None:
    """The admin API's decoder lets through what the pattern matches: each must parse, in range, exactly."""
    text = data.draw(st.from_regex(re.compile(pattern), fullmatch=True))
    micros = parse_signed_amount(text)
    assert Decimal(text) * 1_000_000 == micros
    assert abs(micros) < 10**15
    if least is None:
        assert micros != 0
    else:
        assert micros >= least


@pytest.mark.parametrize(
    ("text", "amount", "positive", "nonzero"),
    [
        ("25", True, True, True),
        ("0.10", True, True, True),
        ("0", True, False, False),
        ("0.000000", True, False, False),
        ("-1", False, False, True),
        ("0.0000001", False, False, False),
        ("1e2", False, False, False),
        (" 1", False, False, False),
        ("1000000000", False, False, False),
        ("01", False, False, False),
    ],
)
def test_the_admin_patterns(text: str, amount: bool, positive: bool, nonzero: bool) -> None:
    matches = [
        re.search(p, text) is not None for p in (AMOUNT_PATTERN, POSITIVE_AMOUNT_PATTERN, NONZERO_AMOUNT_PATTERN)
    ]
    assert matches == [amount, positive, nonzero]
