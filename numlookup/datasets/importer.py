"""Import operator data: read, validate, build beside the live data, then swap.

An import never touches what is being served: the new table is compiled in a
fresh folder, written and synced, and only then does one transaction make it the
active version. A bad line aborts the whole import (with its line number and
reason) unless skipping was asked for; either way the old data keeps serving.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
from sqlalchemy import Engine

from numlookup.datasets import catalog
from numlookup.datasets.formats import LineError, PortedRecord, RangeRecord
from numlookup.numbering.tables import DataNetwork, PortedTable, RangeTable, pad_high, pad_low

Kind = Literal["ranges", "ported"]
MAX_REPORTED_ERRORS = 100


class ImportFailed(ValueError):
    """Nothing was imported; ``errors`` holds the bad lines found."""

    def __init__(self, message: str, errors: list[LineError] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


@dataclass
class ImportReport:
    version: catalog.DatasetVersion
    seconds: float
    errors: list[LineError] = field(default_factory=list)  # skipped lines, at most MAX_REPORTED_ERRORS


class _Networks:
    """Interns (mccmnc, name) pairs into small integer indices."""

    def __init__(self, existing: Iterable[DataNetwork] = ()) -> None:
        self.items: list[DataNetwork] = list(existing)
        self.index = {n: i for i, n in enumerate(self.items)}

    def __call__(self, mccmnc: str, name: str | None) -> int:
        network = DataNetwork(mccmnc, name)
        found = self.index.get(network)
        if found is None:
            found = self.index[network] = len(self.items)
            self.items.append(network)
        return found


def _collect(
    records: Iterable[RangeRecord | PortedRecord | LineError], skip_invalid: bool
) -> tuple[list[RangeRecord | PortedRecord], int, list[LineError]]:
    good: list[RangeRecord | PortedRecord] = []
    errors: list[LineError] = []
    skipped = 0
    for record in records:
        if isinstance(record, LineError):
            if not skip_invalid:
                raise ImportFailed(f"{record}; nothing was imported (use --skip-invalid to skip bad lines)", [record])
            skipped += 1
            if len(errors) < MAX_REPORTED_ERRORS:
                errors.append(record)
            continue
        good.append(record)
    return good, skipped, errors


def _build_ranges(records: list[RangeRecord], previous: RangeTable | None, delta: bool) -> RangeTable:
    networks = _Networks(previous.networks if previous is not None and delta else ())
    intervals: dict[tuple[int, int], tuple[int, int]] = {}  # (low, high) -> (specificity, network)
    if previous is not None and delta:
        for (low, high, spec), value in zip(previous.intervals.tolist(), previous.interval_values.tolist(), strict=True):
            intervals[(low, high)] = (spec, value)
    for record in records:
        low, high = pad_low(record.low), pad_high(record.high)
        if record.action == "remove":
            if intervals.pop((low, high), None) is None:
                raise ImportFailed(f"line {record.line}: cannot remove {record.low}-{record.high}: it is not in the dataset")
            continue
        assert record.mccmnc is not None
        intervals[(low, high)] = (len(record.low), networks(record.mccmnc, record.name))
    array = np.array([[low, high, spec] for (low, high), (spec, _) in intervals.items()], dtype=np.int64).reshape(-1, 3)
    values = np.array([value for _, value in intervals.values()], dtype=np.int32)
    return RangeTable.compile(array, values, networks.items)


def _build_ported(records: list[PortedRecord], previous: PortedTable | None, delta: bool) -> PortedTable:
    networks = _Networks(previous.networks if previous is not None and delta else ())
    adds = [r for r in records if r.action == "add"]
    keys = np.fromiter((int(r.number) for r in adds), dtype=np.int64, count=len(adds))
    values = np.fromiter((networks(r.mccmnc or "", None) for r in adds), dtype=np.uint16, count=len(adds))
    if len(networks.items) > np.iinfo(np.uint16).max:
        raise ImportFailed("more than 65,535 distinct networks in one ported-number dataset")
    fresh = PortedTable.build(keys, values, networks.items)
    removed = np.fromiter((int(r.number) for r in records if r.action == "remove"), dtype=np.int64)
    if previous is None or not delta:
        return fresh
    old_keys = np.asarray(previous.keys)
    keep = ~np.isin(old_keys, np.concatenate([removed, fresh.keys]))
    merged_keys = np.concatenate([old_keys[keep], fresh.keys])
    merged_values = np.concatenate([np.asarray(previous.values)[keep], fresh.values])
    order = np.argsort(merged_keys, kind="stable")
    return PortedTable(merged_keys[order], merged_values[order], networks.items)


def _write(folder: Path, table: RangeTable | PortedTable) -> None:
    """Build in a temporary folder, sync every file, then rename into place."""
    staging = folder.with_name(folder.name + ".partial")
    staging.mkdir(parents=True)
    try:
        table.save(staging)
        for path in staging.iterdir():
            with path.open("rb") as fh:
                os.fsync(fh.fileno())
        staging.rename(folder)
        dir_fd = os.open(folder.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_table(data_dir: Path, version: catalog.DatasetVersion) -> RangeTable | PortedTable:
    folder = catalog.dataset_folder(data_dir, version)
    return RangeTable.load(folder) if version.kind == "ranges" else PortedTable.load(folder)


def import_dataset(
    engine: Engine,
    data_dir: Path,
    kind: Kind,
    records: Iterable[RangeRecord | PortedRecord | LineError],
    *,
    source: str,
    fmt: str,
    delta: bool = False,
    skip_invalid: bool = False,
    on_built: Callable[[], None] | None = None,
) -> ImportReport:
    """Validate every record, build the new version beside the live one, then activate it."""
    started = time.perf_counter()
    good, skipped, errors = _collect(records, skip_invalid)
    if not good and not delta:
        raise ImportFailed("the file holds no valid rows; nothing was imported", errors)
    previous_version = catalog.active_versions(engine).get(kind)
    previous = load_table(data_dir, previous_version) if previous_version is not None and delta else None
    if kind == "ranges":
        table: RangeTable | PortedTable = _build_ranges(good, previous, delta)  # type: ignore[arg-type]
    else:
        table = _build_ported(good, previous, delta)  # type: ignore[arg-type]
    relative = Path("datasets") / kind / f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    _write(data_dir / relative, table)
    if on_built is not None:
        on_built()
    version = catalog.activate(
        engine,
        catalog.DatasetVersion(
            kind=kind,
            version=0,
            format=fmt,
            source=source,
            mode="delta" if delta else "full",
            rows=len(table),
            records=len(good),
            skipped=skipped,
            path=str(relative),
            active=True,
            imported_at=datetime.now(UTC),
        ),
    )
    return ImportReport(version=version, seconds=time.perf_counter() - started, errors=errors)

