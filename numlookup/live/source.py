"""The one small interface every live source implements.

A source answers a batch of E.164 numbers it was routed; what it cannot answer
it leaves out or marks with an error. It never raises for a per-number problem,
and a failure of the source as a whole (refused, reset, timeout, garbage, 5xx,
wrong credentials upstream) raises ``SourceError``: the caller turns that into
per-item UNKNOWN answers with the reason, and counts it for the circuit breaker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


class SourceError(Exception):
    """The source as a whole failed; the message is safe to show a client (no internals)."""


@dataclass(frozen=True, slots=True)
class LiveAnswer:
    """What a live source says about one number.

    ``reachable`` None means the source could not tell (then ``error`` says why).
    ``roaming_gt`` is the E.164 global title of the serving VLR/MSC when the source
    knows it; ``roaming_mccmnc`` the serving network when the source gives it
    directly (an upstream API does). ``ported_mccmnc`` is the subscriber's current
    home network if the source knows it (an upstream may).
    """

    number: str
    reachable: bool | None
    roaming: bool | None = None
    roaming_mccmnc: str | None = None
    roaming_gt: str | None = None
    ported_mccmnc: str | None = None
    error: str | None = None
    checked_at: datetime | None = None


class LiveSource(Protocol):
    """``name`` appears in results as ``source``: ``osmo-hlr`` or ``upstream:<name>``."""

    name: str
    max_batch: int

    async def query(self, numbers: Sequence[str], max_age: float | None = None) -> dict[str, LiveAnswer]:
        """Answers for ``numbers``; ``max_age``: the oldest answer the asker accepts (a caching upstream's concern)."""
        ...

    async def close(self) -> None: ...
