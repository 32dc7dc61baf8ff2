"""Which class serves each source kind, and building the sources the routes use.

The one place that knows every kind: settings name a kind (``[upstreams.NAME]``
``kind = …``, see ``source_settings``), and this module turns those settings
into a running ``LiveSource`` with its concurrency, its guard timeout and what
its provider charges us. A kind's module is imported only when a route uses it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from numlookup.live.source import LiveSource, UsesNumbering
from numlookup.live.usage import Pricing
from numlookup.numbering import Resolver
from numlookup.settings import OSMO_HLR, UPSTREAM_PREFIX, Settings
from numlookup.source_settings import SourceKind, UpstreamSettings

# kind → (module, class): the class has ``from_settings(name, settings, max_connections)``.
SOURCE_CLASSES: dict[SourceKind, tuple[str, str]] = {
    "messente": ("numlookup.live.messente", "MessenteSource"),
    "infobip": ("numlookup.live.infobip", "InfobipSource"),
    "hlr-lookups": ("numlookup.live.hlr_lookups", "HlrLookupsSource"),
    "twilio": ("numlookup.live.twilio", "TwilioSource"),
    "tyntec": ("numlookup.live.tyntec", "TyntecSource"),
    "enum": ("numlookup.live.enum", "EnumSource"),
}


@dataclass(frozen=True, slots=True)
class BuiltSource:
    source: LiveSource
    concurrency: int  # requests in flight at most
    guard_seconds: float  # an upper bound on one query, even if the source ignores its own timeout
    pricing: Pricing


def kind_of(settings: UpstreamSettings) -> SourceKind:
    kind: SourceKind = settings.__struct_config__.tag  # type: ignore[assignment]  # every kind's tag is a SourceKind
    return kind


def _builder(kind: SourceKind) -> Callable[[str, Any, int], LiveSource]:
    module, name = SOURCE_CLASSES[kind]
    built: Callable[[str, Any, int], LiveSource] = getattr(importlib.import_module(module), name).from_settings
    return built


def micros(amount: Decimal) -> int:
    """Millionths of a currency unit, exactly (settings refuse a cost with more than six decimals)."""
    value = amount * 1_000_000
    assert value == value.to_integral_value(), amount
    return int(value)


def build_sources(settings: Settings, names: set[str], resolver: Resolver | None = None) -> dict[str, BuiltSource]:
    """The sources the routes use, by canonical name (``osmo-hlr``, ``upstream:NAME``).

    ``resolver`` goes to the sources that read numbering data (``UsesNumbering``: ENUM).
    """
    built: dict[str, BuiltSource] = {}
    for name in sorted(names):
        if name == OSMO_HLR:
            from numlookup.live.osmo_hlr import OsmoHlrSource

            osmo = settings.osmo_hlr
            assert osmo is not None  # checked by Settings
            concurrency = osmo.max_concurrency or settings.live_max_concurrency
            source: LiveSource = OsmoHlrSource(osmo.host, osmo.port, osmo.timeout, concurrency, osmo.vlr_map)
            built[name] = BuiltSource(source, concurrency, osmo.timeout + 1.0, Pricing())
        elif name.startswith(UPSTREAM_PREFIX):
            key = name.removeprefix(UPSTREAM_PREFIX)
            upstream = settings.upstreams[key]
            concurrency = upstream.max_concurrency or settings.live_max_concurrency
            source = _builder(kind_of(upstream))(key, upstream, concurrency)
            if resolver is not None and isinstance(source, UsesNumbering):
                source.use_numbering(resolver)
            pricing = Pricing(micros(upstream.cost), upstream.currency)
            # Batches of one query may wait for a pooled connection, then take up to ``timeout``.
            built[name] = BuiltSource(source, concurrency, upstream.timeout * 2 + 1.0, pricing)
    return built
