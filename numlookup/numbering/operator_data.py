"""The operator's own data as one immutable value, swapped whole into a running resolver.

A lookup takes one snapshot for its whole batch, so no lookup ever sees half a
dataset, and a new version needs no lock: replacing the reference is atomic.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from numlookup.numbering.tables import PortedTable, RangeTable


@dataclass(frozen=True, slots=True)
class OperatorData:
    ranges: RangeTable | None = None
    ported: PortedTable | None = None
    # kind -> active version, so a follower can tell whether it is up to date
    versions: dict[str, int] = field(default_factory=dict)
