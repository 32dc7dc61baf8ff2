"""What a lookup costs: the price of each answer class, the quote before live sources, the sum charged.

One owner for prices, so the refusal before a source is asked (402, nothing
spent upstream) and the charge after it can never disagree on a price. Amounts
are micro-credits (see ``money``).

A number's price depends on the class of its answer: ``live`` (a source
answered), ``cache`` (a stored live answer was fresh enough), or ``offline``
(everything else: numbers routed to no source, a live query that failed, came
too late, or whose source could not tell). ``cache`` and ``live`` prices that are
not set mean the offline price, which for an account with a price of its own is
that price: accounts carry one price, and class prices set in the settings apply
to every account.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, Self, get_args

from numlookup.billing.money import to_micros
from numlookup.settings import Settings

ChargeClass = Literal["offline", "cache", "live"]
CHARGE_CLASSES: tuple[ChargeClass, ...] = get_args(ChargeClass)


@dataclass(frozen=True, slots=True)
class Prices:
    """Micro-credits per chargeable number, by answer class (None: the offline price)."""

    offline: int
    cache: int | None = None
    live: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(
            offline=to_micros(settings.offline_price),
            cache=None if settings.price_cache is None else to_micros(settings.price_cache),
            live=None if settings.price_live is None else to_micros(settings.price_live),
        )

    def of(self, charge_class: ChargeClass, account_price: int | None) -> int:
        """One number's price for an answer of ``charge_class`` to an account whose own price is ``account_price``."""
        if charge_class == "cache" and self.cache is not None:
            return self.cache
        if charge_class == "live" and self.live is not None:
            return self.live
        return self.offline if account_price is None else account_price

    def dearest(self, account_price: int | None) -> int:
        return max(self.of(c, account_price) for c in CHARGE_CLASSES)

    def quote(self, numbers: Iterable[str], routed: Collection[str], account_price: int | None) -> int:
        """The most a request can cost: every number in ``routed`` answered at the dearest class, the rest offline.

        Checked against the balance before any live source is asked, because an
        upstream answer costs the operator money whether or not the client can pay.
        """
        dearest, offline = self.dearest(account_price), self.of("offline", account_price)
        return sum(dearest if number in routed else offline for number in numbers)

    def total(self, numbers: Iterable[str], classes: Mapping[str, ChargeClass], account_price: int | None) -> int:
        """The exact charge: each number at the price of its answer's class (``offline`` where none is given)."""
        if not classes and isinstance(numbers, Collection):
            # No live answer, the usual request: every number at the offline price, without a lookup per number
            # (the per-number sum was 4 % of the fused edge's loop CPU for ten numbers).
            return len(numbers) * self.of("offline", account_price)
        return sum(self.of(classes.get(number, "offline"), account_price) for number in numbers)

    def reserve(self, offline_numbers: int, routed_numbers: int, account_price: int | None) -> int:
        """What a bulk job holds at submit for its distinct valid numbers: the dearest class for live-routed ones.

        The same rule as ``quote``, counted rather than listed: a job of millions
        of numbers knows how many of each it has, not a set of them.
        """
        return routed_numbers * self.dearest(account_price) + offline_numbers * self.of("offline", account_price)
