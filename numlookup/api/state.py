"""What a running app holds: settings, the engine and the loaded numbering data."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from numlookup.numbering import Resolver
from numlookup.settings import Settings


@dataclass(frozen=True, slots=True)
class AppState:
    settings: Settings
    engine: Engine
    resolver: Resolver
    default_price: int  # micro-credits per chargeable number
