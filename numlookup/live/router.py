"""Which live sources serve a number, in the order they are tried: the ``live_routes`` setting, first match wins.

Routes match on the country calling code, on the MCC/MNC of the number's
network, or on an E.164 prefix. The network is the current one (the ported-to
network when porting data says the number moved, else the range holder): that
is the network whose HLR holds the subscriber.
"""

from __future__ import annotations

from collections.abc import Sequence

from numlookup.numbering.models import Resolution
from numlookup.settings import OFFLINE, LiveRoute, Settings


class Router:
    def __init__(self, routes: Sequence[tuple[str, str, tuple[str, ...]]]) -> None:
        """``routes``: (kind, value, canonical source names in the order tried) in priority order."""
        self._routes = tuple(routes)

    @classmethod
    def from_settings(cls, settings: Settings) -> Router:
        return cls([(r.kind, r.value, tuple(settings.source_name(s) for s in r.chain)) for r in settings.live_routes])

    @property
    def sources(self) -> set[str]:
        """The sources some route can reach (``offline`` excluded)."""
        return {source for _, _, chain in self._routes for source in chain if source != OFFLINE}

    def route(self, resolution: Resolution) -> tuple[str, ...]:
        """The sources to ask for a valid number, in order; empty for an offline answer."""
        if not resolution.valid or resolution.e164 is None:
            return ()
        digits = resolution.e164[1:]
        network = resolution.current_network
        mccmnc = network.mccmnc if network is not None else None
        calling_code = resolution.country.calling_code if resolution.country is not None else None
        for kind, value, chain in self._routes:
            if (
                (kind == "prefix" and digits.startswith(value))
                or (kind == "cc" and (calling_code == value if calling_code else digits.startswith(value)))
                or (kind == "mccmnc" and mccmnc == value)
            ):
                return () if chain == (OFFLINE,) else chain
        return ()


__all__ = ["LiveRoute", "Router"]
