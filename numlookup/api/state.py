"""What a running app holds: settings, the database, numbering data, prices, idempotency keys, the live layer."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from numlookup.accounts.cache import AccountCache
from numlookup.api.coalescer import ResolveCoalescer
from numlookup.api.idempotency import IdempotencyStore
from numlookup.billing.charger import GroupCharger
from numlookup.billing.prices import Prices
from numlookup.jobs.cpu import Cpu
from numlookup.live.service import LiveService
from numlookup.metrics import Metrics
from numlookup.numbering import Resolver
from numlookup.settings import Settings


@dataclass(frozen=True, slots=True)
class AppState:
    settings: Settings
    engine: Engine
    accounts: AccountCache
    resolver: Resolver
    coalescer: ResolveCoalescer
    prices: Prices
    charger: GroupCharger
    metrics: Metrics
    jobs_cpu: Cpu
    idempotency: IdempotencyStore
    live: LiveService | None = None
