"""What a running app holds: settings, the engine, the loaded numbering data and the live layer."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from numlookup.accounts.cache import AccountCache
from numlookup.api.coalescer import ResolveCoalescer
from numlookup.billing.charger import GroupCharger
from numlookup.live.service import ChargeClass, LiveService
from numlookup.metrics import Metrics
from numlookup.numbering import Resolver
from numlookup.settings import Settings


@dataclass(frozen=True, slots=True)
class Prices:
    """Micro-credits per chargeable number and answer class.

    ``cache`` and ``live`` None mean "the offline price", which for an account
    with its own price is that price: accounts carry one price, and a class price
    set in the settings applies to every account.
    """

    offline: int
    cache: int | None = None
    live: int | None = None

    def of(self, charge_class: ChargeClass, account_price: int | None) -> int:
        offline = self.offline if account_price is None else account_price
        if charge_class == "cache" and self.cache is not None:
            return self.cache
        if charge_class == "live" and self.live is not None:
            return self.live
        return offline

    def most(self, account_price: int | None) -> int:
        return max(self.of(c, account_price) for c in ("offline", "cache", "live"))


@dataclass(frozen=True, slots=True)
class AppState:
    settings: Settings
    engine: Engine
    accounts: AccountCache
    resolver: Resolver
    coalescer: ResolveCoalescer
    default_price: int  # micro-credits per chargeable offline answer (price_offline, else default_price)
    prices: Prices | None = None
    live: LiveService | None = None
    metrics: Metrics | None = None
    charger: GroupCharger | None = None

    def price(self, charge_class: ChargeClass, account_price: int | None) -> int:
        prices = self.prices or Prices(self.default_price)
        return prices.of(charge_class, account_price)

    def most_price(self, account_price: int | None) -> int:
        prices = self.prices or Prices(self.default_price)
        return prices.most(account_price)
