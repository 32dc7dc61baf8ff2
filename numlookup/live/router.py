"""Which live source serves a number: the ``live_routes`` setting, first match wins.

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
    def __init__(self, routes: Sequence[tuple[str, str, str]]) -> None:
        """``routes``: (kind, value, canonical source name) in priority order."""
        self._routes = tuple(routes)

    @classmethod
    def from_settings(cls, settings: Settings) -> Router:
        return cls([(r.kind, r.value, settings.source_name(r.source)) for r in settings.live_routes])

    @property
    def sources(self) -> set[str]:
        """The sources some route can reach (``offline`` excluded)."""
        return {source for _, _, source in self._routes if source != OFFLINE}

    def route(self, resolution: Resolution) -> str | None:
        """The source name for a valid number, or None for an offline answer."""
        if not resolution.valid or resolution.e164 is None:
            return None
        digits = resolution.e164[1:]
        network = resolution.current_network
        mccmnc = network.mccmnc if network is not None else None
        calling_code = resolution.country.calling_code if resolution.country is not None else None
        for kind, value, source in self._routes:
            if (
                (kind == "prefix" and digits.startswith(value))
                or (kind == "cc" and (calling_code == value if calling_code else digits.startswith(value)))
                or (kind == "mccmnc" and mccmnc == value)
            ):
                return None if source == OFFLINE else source
        return None


__all__ = ["LiveRoute", "Router"]
