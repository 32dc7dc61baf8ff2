"""The active operator data of a SQLite data directory, read without SQLAlchemy: ``numlookup lookup``'s start.

The same answer as ``follower.load_operator_data`` where this module can give
it (see ``store/sqlite_read.py``): the catalogue's active versions, mapped from
their folders. Where it cannot — not SQLite, a schema to migrate, a version whose
folder this node lacks (it is fetched from the database) — it returns None and
the caller loads through SQLAlchemy.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

from numlookup.datasets.catalog import PORTED, RANGES
from numlookup.numbering.operator_data import OperatorData, PortedMap, RangeMap
from numlookup.store.sqlite_read import open_at_head


def quick_operator_data(database_url: str, data_dir: Path) -> OperatorData | None:
    conn = open_at_head(database_url)
    if conn is None:
        return None
    try:
        with closing(conn):
            rows = conn.execute("SELECT kind, version, path FROM datasets WHERE active").fetchall()
    except sqlite3.Error:
        return None
    ranges: RangeMap | None = None
    ported: PortedMap | None = None
    versions: dict[str, int] = {}
    for kind, version, relative in rows:
        folder = data_dir / relative
        if kind not in (RANGES, PORTED) or kind in versions or not folder.is_dir():
            return None
        if kind == RANGES:
            ranges = RangeMap.load(folder)
        else:
            ported = PortedMap.load(folder)
        versions[kind] = int(version)
    return OperatorData(ranges=ranges, ported=ported, versions=versions)
