"""The sources of the shipped data, from ``data/sources.csv``: what ``numlookup data sources`` lists.

Every table under ``data/`` is built from vendored inputs (``data/sources/`` in the
repository, not in the wheel) or reviewed by hand; ``sources.csv`` names each source's
origin, the commit or date used, its licence and the attribution it asks for, so that the
CLI, ``PROVENANCE.md`` and ``NOTICE`` say the same. Runtime sources (libphonenumber,
pycountry) report the installed version.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from importlib import metadata, resources

KINDS = ("registry", "ranges", "reviewed", "evidence", "runtime")
_PACKAGES = {"libphonenumber": "phonenumbers", "pycountry": "pycountry"}


@dataclass(frozen=True, slots=True)
class Source:
    id: str
    kind: str  # one of KINDS: registry (MCC/MNCs), ranges (who holds which numbers), reviewed, evidence, runtime
    title: str
    origin: str
    version: str  # a commit, or the installed package version
    date: str
    licence: str
    attribution: str
    inputs: str  # the vendored folder in the repository, if any
    outputs: tuple[str, ...]  # the shipped tables it feeds

    @property
    def label(self) -> str:
        """``title (version, date)``, short enough for a table row."""
        version = self.version[:7] if len(self.version) == 40 else self.version
        when = ", ".join(p for p in (version, self.date) if p)
        return f"{self.title} ({when})" if when else self.title


def shipped_sources() -> tuple[Source, ...]:
    raw = (resources.files("numlookup.numbering") / "data" / "sources.csv").open("rb")
    with io.TextIOWrapper(raw, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for row in rows:
        version = row["version"]
        if version == "installed":
            version = metadata.version(_PACKAGES[row["id"]])
        out.append(
            Source(
                id=row["id"],
                kind=row["kind"],
                title=row["title"],
                origin=row["origin"],
                version=version,
                date=row["date"],
                licence=row["licence"],
                attribution=row["attribution"],
                inputs=row["inputs"],
                outputs=tuple(row["outputs"].split()),
            )
        )
    return tuple(out)
