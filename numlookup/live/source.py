"""The one small interface every live source implements, and the answer every kind maps its provider onto.

A source answers a batch of E.164 numbers it was routed; what it cannot answer
it leaves out or marks with an error. It never raises for a per-number problem,
and a failure of the source as a whole (refused, reset, timeout, garbage, 5xx,
wrong credentials upstream, rate limited) raises ``SourceError``: the caller
turns that into per-item UNKNOWN answers with the reason (or asks the next
source of the route), and counts it for the circuit breaker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from numlookup.numbering import Resolver


class SourceError(Exception):
    """The source as a whole failed; the message is safe to show a client (no internals, no credentials).

    ``retry_after`` (seconds) is set when the source asked us to slow down (HTTP
    429): the dispatcher then sends it nothing until that time has passed.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class LiveAnswer:
    """What a live source says about one number.

    ``reachable`` None means the source could not tell reachability (then
    ``error`` says why, or the source never tells it: ENUM). ``invalid``: the
    network says the number is not in service (a permanent error), whatever the
    numbering plan says.

    Where the subscriber is now (porting): ``ported_mccmnc`` is its current home
    network when the source gives an MCC/MNC; a source that names the network
    only (Infobip, HLR-Lookups) gives ``ported_name`` and the network's country
    calling code ``ported_country``, which the service resolves through the
    registry where it can. ``ported_known`` says the source stated the current
    network at all: a number it says is not ported is ``ported_known`` with no
    other porting field.

    Where it roams: ``roaming_mccmnc`` (or ``roaming_name`` + ``roaming_country``
    the same way), or ``roaming_gt``, the E.164 global title of the serving
    VLR/MSC (osmo-hlr). ``roaming`` is the source's own verdict when it gives one.

    ``cost_micros``: what the provider says it charged for this answer, in
    millionths of the source's ``currency`` (HLR-Lookups states it in each
    answer); None: the configured ``cost`` per number applies.
    """

    number: str
    reachable: bool | None
    roaming: bool | None = None
    roaming_mccmnc: str | None = None
    roaming_gt: str | None = None
    ported_mccmnc: str | None = None
    error: str | None = None
    checked_at: datetime | None = None
    invalid: bool = False
    ported_known: bool | None = None  # None: as before kinds stated it, known iff ported_mccmnc is set
    ported_name: str | None = None
    ported_country: str | None = None
    roaming_name: str | None = None
    roaming_country: str | None = None
    cost_micros: int | None = None

    @property
    def knows_porting(self) -> bool:
        if self.ported_known is not None:
            return self.ported_known
        return self.ported_mccmnc is not None or self.ported_name is not None

    @property
    def says_something(self) -> bool:
        """Whether the answer tells anything a client pays for: reachability, validity, or the current network.

        An answer that says nothing (a source that could not tell) sends the
        number on to the next source of its route.
        """
        return self.reachable is not None or self.invalid or self.knows_porting


class LiveSource(Protocol):
    """``name`` appears in results as ``source``: ``osmo-hlr`` or ``upstream:<name>``."""

    name: str
    max_batch: int

    async def query(self, numbers: Sequence[str], max_age: float | None = None) -> dict[str, LiveAnswer]:
        """Answers for ``numbers``; ``max_age``: the oldest answer the asker accepts (a caching upstream's concern)."""
        ...

    async def close(self) -> None: ...


@runtime_checkable
class UsesNumbering(Protocol):
    """A source that reads the numbering data the server resolves numbers with.

    Why: ENUM answers may name the current network by a routing number that is
    itself a phone number (RFC 4694 ``rn=+4917…``); its range holder, in the same
    data (shipped and imported) the rest of the answer uses, is that network.
    ``build_sources`` hands such a source the server's resolver.
    """

    def use_numbering(self, resolver: Resolver) -> None: ...
