"""Pure, batch-first numbering: parse, countries, networks, resolution. No I/O beyond shipped data.

The names below are loaded on first use, not with the package: the resolver
brings phonenumbers and its geodata (a third of a second), which a command that
only needs ``operator_data`` or ``intervals`` — an import of ported numbers — does
not use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from numlookup.numbering.models import Country, InvalidReason, Network, Resolution
    from numlookup.numbering.resolver import Resolver, international_form

__all__ = ["Country", "InvalidReason", "Network", "Resolution", "Resolver", "international_form"]
_HOMES = {
    "Country": "models",
    "InvalidReason": "models",
    "Network": "models",
    "Resolution": "models",
    "Resolver": "resolver",
    "international_form": "resolver",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value
