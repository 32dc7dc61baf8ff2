"""Which dataset versions exist and which is active: rows in the ``datasets`` table.

The compiled versions live in files under the data directory; the database says
which folder is the active version of each kind, so every worker process (and
every node sharing the folder) can follow a new version by polling one query.
SQLAlchemy is imported by the functions that query, so that ``active`` can name
the kinds without it.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from sqlalchemy import Engine

DatasetKind = Literal["ranges", "ported"]
KINDS: tuple[DatasetKind, ...] = get_args(DatasetKind)
RANGES: DatasetKind = "ranges"
PORTED: DatasetKind = "ported"


def dataset_kind(text: str) -> DatasetKind | None:
    """``text`` as a dataset kind, or None if it names none."""
    return next((kind for kind in KINDS if kind == text), None)


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    kind: str
    version: int
    format: str
    source: str
    mode: str
    rows: int
    records: int
    skipped: int
    path: str
    active: bool
    imported_at: datetime

    def as_dict(self) -> dict[str, object]:
        """The version as ``numlookup data status --json`` prints it (its folder is this node's business)."""
        return {
            "kind": self.kind,
            "version": self.version,
            "active": self.active,
            "mode": self.mode,
            "format": self.format,
            "source": self.source,
            "rows": self.rows,
            "records": self.records,
            "skipped": self.skipped,
            "imported_at": self.imported_at.isoformat(),
        }


def _version(row: object) -> DatasetVersion:
    return DatasetVersion(**{name: getattr(row, name) for name in DatasetVersion.__slots__})


def active_versions(engine: Engine) -> dict[str, DatasetVersion]:
    from sqlalchemy import select

    from numlookup.store.tables import datasets

    with engine.connect() as conn:
        rows = conn.execute(select(datasets).where(datasets.c.active.is_(True)))
        return {row.kind: _version(row) for row in rows}


def all_versions(engine: Engine) -> list[DatasetVersion]:
    from sqlalchemy import select

    from numlookup.store.tables import datasets

    with engine.connect() as conn:
        return [_version(row) for row in conn.execute(select(datasets).order_by(datasets.c.kind, datasets.c.version))]


def activate(engine: Engine, version: DatasetVersion) -> DatasetVersion:
    """Record a built version and make it the active one of its kind, in one transaction."""
    from sqlalchemy import func, insert, select, update

    from numlookup.store.engine import write_transaction
    from numlookup.store.tables import datasets

    with write_transaction(engine) as conn:
        latest = conn.execute(select(func.max(datasets.c.version)).where(datasets.c.kind == version.kind)).scalar()
        number = (latest or 0) + 1
        conn.execute(update(datasets).where(datasets.c.kind == version.kind).values(active=False))
        values = {name: getattr(version, name) for name in DatasetVersion.__slots__}
        values.update(version=number, active=True)
        conn.execute(insert(datasets).values(**values))
    return DatasetVersion(**values)


def dataset_folder(data_dir: Path, version: DatasetVersion) -> Path:
    return data_dir / version.path


def prune(engine: Engine, data_dir: Path, kind: str, keep: int = 2) -> list[DatasetVersion]:
    """Delete the files of all but the newest ``keep`` versions; returns those versions.

    Their catalogue rows stay as history. A worker still mapping an older version
    keeps reading it: on POSIX an unlinked file lives on until its last mapping
    is closed.
    """
    versions = sorted((v for v in all_versions(engine) if v.kind == kind), key=lambda v: v.version, reverse=True)
    for version in versions[keep:]:
        folder = dataset_folder(data_dir, version)
        if folder.exists():
            shutil.rmtree(folder)
    return versions[keep:]
