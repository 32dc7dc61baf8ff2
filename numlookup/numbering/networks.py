"""The shipped network registry and the map from libphonenumber carrier names to it.

libphonenumber knows which carrier a mobile range was allocated to, by name only;
routing and pricing key on MCC/MNC. ``data/networks.csv`` is the MCC/MNC registry and
``data/carrier_networks.csv`` (generated from reviewed overrides and matching rules)
bridges the two (see ``data/PROVENANCE.md``). The registry merges Wikipedia's MCC/MNC
list, Android's carrier ID table and reviewed rows; each record says which decided it.
A carrier name with no mapping still reaches the client as ``networkName``, with
``mccmnc`` null, rather than being dropped.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self


@dataclass(frozen=True, slots=True)
class NetworkRecord:
    mccmnc: str
    country_iso: str  # ISO 3166-1 alpha-2; several joined with "/" ("GB/GG/JE"), the MCC's own first
    name: str  # the name subscribers know the network by
    operator: str  # the company that holds the code
    mcc: str = ""
    mnc: str = ""
    brand: str = ""
    status: str = ""  # as the registry source writes it: "Operational", "Not operational", ...
    android_name: str = ""  # the name Android's carrier ID table gives the code
    source: str = ""  # which registry decided the row: "wikipedia", "android" or "reviewed"

    @property
    def countries(self) -> tuple[str, ...]:
        return tuple(c for c in self.country_iso.split("/") if c)


# The shipped CSVs, beside this module (the package is installed as files): not through
# importlib.resources, whose import brings tempfile and more, some 5 ms of every process start.
DATA = Path(__file__).parent / "data"


def _csv(path: Path) -> io.TextIOWrapper:
    """A shipped CSV opened as the csv module wants it (``newline=""``)."""
    return io.TextIOWrapper(path.open("rb"), encoding="utf-8", newline="")


class _Records(Mapping[str, NetworkRecord]):
    """The registry's records by MCC/MNC, each made from its CSV row the first time it is asked for.

    Why: a process reads the registry at every start, and making all 3,000-odd
    records took longer than reading the file; a lookup asks for a handful.
    Two threads making one record at once make equal ones: either is kept.
    """

    def __init__(self, rows: dict[str, list[str]], make: Callable[[list[str]], NetworkRecord]) -> None:
        self._rows = rows
        self._make = make
        self._made: dict[str, NetworkRecord] = {}

    def __getitem__(self, mccmnc: str) -> NetworkRecord:
        record = self._made.get(mccmnc)
        if record is None:
            record = self._made[mccmnc] = self._make(self._rows[mccmnc])
        return record

    def __contains__(self, mccmnc: object) -> bool:
        return mccmnc in self._rows

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


class NetworkRegistry:
    """Read-only after construction; lookups are two dict probes."""

    def __init__(
        self,
        records: Mapping[str, NetworkRecord],
        carriers: dict[tuple[str, str], str],
        decided_by: dict[tuple[str, str], str] | None = None,
    ) -> None:
        self.records = records
        self._carriers = carriers
        self._decided_by = decided_by or {}

    @classmethod
    def shipped(cls) -> Self:
        """The shipped registry, read from its CSVs by column position; a record is made when first used.

        Not ``csv.DictReader``: this runs at every process start (each CLI lookup,
        each server worker), and a dict per row made reading twice as slow.
        """
        data = DATA
        with _csv(data / "networks.csv") as fh:
            rows = csv.reader(fh)
            column = {name: i for i, name in enumerate(next(rows))}
            mccmnc, country, name, operator = (column[c] for c in ("mccmnc", "country_iso", "network_name", "operator"))
            optional = [column.get(c) for c in ("mcc", "mnc", "brand", "status", "android_name", "source")]
            by_code = {row[mccmnc]: row for row in rows}

        def record(row: list[str]) -> NetworkRecord:
            mcc, mnc, brand, status, android_name, source = ("" if i is None else row[i] for i in optional)
            code = row[mccmnc]
            return NetworkRecord(
                code,
                row[country],
                row[name],
                row[operator],
                mcc=mcc or code[:3],
                mnc=mnc or code[3:],
                brand=brand,
                status=status,
                android_name=android_name,
                source=source,
            )

        records = _Records(by_code, record)
        with _csv(data / "carrier_networks.csv") as fh:
            rows = csv.reader(fh)
            column = {name: i for i, name in enumerate(next(rows))}
            region, carrier, network, note = (column[c] for c in ("region", "carrier_name", "mccmnc", "note"))
            # A row with an empty mccmnc was reviewed and has no MNC of its own (see its note).
            mapped = [row for row in rows if row[network]]
        carriers = {(row[region], row[carrier]): row[network] for row in mapped}
        decided_by = {
            (row[region], row[carrier]): "override" if row[note].startswith("override") else "rule" for row in mapped
        }
        unknown = sorted({m for m in carriers.values() if m not in records})
        if unknown:
            raise ValueError(f"carrier_networks.csv names MCC/MNCs missing from networks.csv: {unknown}")
        return cls(records, carriers, decided_by)

    def network_for_carrier(self, region: str, carrier_name: str) -> tuple[str | None, str | None]:
        """``(mccmnc, network name)`` for a libphonenumber carrier name of ``region``."""
        if not carrier_name:
            return None, None
        mccmnc = self._carriers.get((region, carrier_name))
        if mccmnc is None:
            return None, carrier_name
        return mccmnc, self.records[mccmnc].name

    def decided_by(self, region: str, carrier_name: str) -> str | None:
        """How a carrier name got its MCC/MNC: ``override`` (reviewed), ``rule`` (name matching), None (it has none)."""
        return self._decided_by.get((region, carrier_name))
