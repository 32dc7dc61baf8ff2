"""Keeps a running resolver on the active dataset versions.

Each worker process polls the catalogue; when an import has activated a new
version, the worker maps the new files and swaps them in. Lookups in flight
finish on the snapshot they started with.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import anyio.to_thread
from sqlalchemy import Engine

from numlookup.datasets import catalog
from numlookup.datasets.catalog import PORTED, RANGES
from numlookup.datasets.importer import load_version
from numlookup.numbering import Resolver
from numlookup.numbering.operator_data import OperatorData, PortedMap, RangeMap

log = logging.getLogger("numlookup.datasets")


def load_operator_data(engine: Engine, data_dir: Path) -> OperatorData:
    actives = catalog.active_versions(engine)
    ranges = load_version(engine, data_dir, actives[RANGES]) if RANGES in actives else None
    ported = load_version(engine, data_dir, actives[PORTED]) if PORTED in actives else None
    assert ranges is None or isinstance(ranges, RangeMap)
    assert ported is None or isinstance(ported, PortedMap)
    return OperatorData(ranges=ranges, ported=ported, versions={k: v.version for k, v in actives.items()})


def refresh(resolver: Resolver, engine: Engine, data_dir: Path) -> bool:
    """Swap in new versions if the catalogue has any; True if it did."""
    versions = {k: v.version for k, v in catalog.active_versions(engine).items()}
    if versions == resolver.operator.versions:
        return False
    resolver.use(load_operator_data(engine, data_dir))
    log.info("now serving operator data %s", versions)
    return True


async def follow(resolver: Resolver, engine: Engine, data_dir: Path, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        try:
            await anyio.to_thread.run_sync(refresh, resolver, engine, data_dir)
        except Exception:  # keep serving the old data; try again next round
            log.exception("could not load the active datasets")
