"""``billing.prices.Prices.total``: the sum charged, by answer class, exact in micro-credits."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from numlookup.billing.prices import ChargeClass, Prices

NUMBERS = ["+37251000001", "+358401234567", "+4915112345678"]


@pytest.mark.parametrize("account_price", [None, 7_000])
@pytest.mark.parametrize("prices", [Prices(10_000), Prices(10_000, cache=2_000, live=30_000)])
def test_a_request_without_live_answers_costs_the_offline_price_per_number_whatever_its_container(
    prices: Prices, account_price: int | None
) -> None:
    """The fast path (a sized collection, no classes) agrees with the per-number sum an iterator takes."""

    def one_at_a_time() -> Iterator[str]:
        yield from NUMBERS

    expected = sum(prices.of("offline", account_price) for _ in NUMBERS)
    assert prices.total(dict.fromkeys(NUMBERS), {}, account_price) == expected
    assert prices.total(NUMBERS, {}, account_price) == expected
    assert prices.total(one_at_a_time(), {}, account_price) == expected
    assert prices.total([], {}, account_price) == 0


def test_each_number_is_charged_at_its_answers_class() -> None:
    prices = Prices(10_000, cache=2_000, live=30_000)
    classes: dict[str, ChargeClass] = {NUMBERS[0]: "live", NUMBERS[1]: "cache"}
    assert prices.total(NUMBERS, classes, None) == 30_000 + 2_000 + 10_000
    assert prices.total(NUMBERS, classes, 7_000) == 30_000 + 2_000 + 7_000
    assert Prices(10_000).total(NUMBERS, classes, 7_000) == 3 * 7_000  # unset class prices: the account's
