"""Pure, batch-first numbering: parse, countries, networks, resolution. No I/O beyond shipped data."""

from numlookup.numbering.models import Country, InvalidReason, Network, Resolution
from numlookup.numbering.resolver import Resolver, international_form

__all__ = ["Country", "InvalidReason", "Network", "Resolution", "Resolver", "international_form"]
