"""Which live sources serve a number, in the order they are tried: the ``live_routes`` setting, first match wins.

Routes match on the country calling code, on the MCC/MNC of the number's
network, or on an E.164 prefix. The network is the current one (the ported-to
network when porting data says the number moved, else the range holder): that
is the network whose HLR holds the subscriber.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from numlookup.numbering.intervals import POW10
from numlookup.numbering.models import Network, Resolution
from numlookup.settings import OFFLINE, LiveRoute, Settings

NO_ROUTE = -1


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

    def chain(self, index: int) -> tuple[str, ...]:
        """The sources of route ``index`` (as :meth:`route_rows` numbers them), in order."""
        return self._routes[index][2]

    def route_rows(
        self,
        digits: npt.NDArray[np.int64],
        original: npt.NDArray[np.int32],
        current: npt.NDArray[np.int32],
        networks: Sequence[Network],
    ) -> npt.NDArray[np.int16]:
        """:meth:`route` for a resolved batch in columns: per row the index of its route, or ``NO_ROUTE``.

        Why: a bulk job routes millions of numbers, and building a ``Resolution``
        per number would cost more than resolving them. ``digits`` is each row's
        E.164 number (0: not valid, never routed), ``original`` and ``current``
        index ``networks`` (the range holder, whose country gives the calling
        code; the network now, for ``mccmnc:``). The first matching route wins; a
        route to ``offline`` is no route.
        """
        routed = np.full(len(digits), NO_ROUTE, dtype=np.int16)
        open_rows = (digits > 0) & (original >= 0)
        if not self._routes or not open_rows.any():
            return routed
        lengths = np.searchsorted(POW10, digits, side="right")
        codes = [n.country.calling_code for n in networks]
        mccmncs = [n.mccmnc for n in networks]
        safe_original = np.maximum(original, 0)
        safe_current = np.where(current >= 0, current, safe_original)
        for index, (kind, value, chain) in enumerate(self._routes):
            if kind == "prefix":
                width = len(value)
                head = digits // POW10[np.maximum(lengths - width, 0)]
                match = (lengths >= width) & (head == int(value))
            elif kind == "cc":
                match = np.array([code == value for code in codes] or [False], dtype=np.bool_)[safe_original]
            else:
                match = np.array([mccmnc == value for mccmnc in mccmncs] or [False], dtype=np.bool_)[safe_current]
            hit = open_rows & match
            routed[hit] = NO_ROUTE if chain == (OFFLINE,) else index
            open_rows &= ~hit
        return routed


__all__ = ["LiveRoute", "Router"]
