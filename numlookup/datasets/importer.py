"""Import operator data: read, validate, build beside the live data, then swap.

An import never touches what is being served: the new version is compiled in a
fresh folder, written and synced, and only then does one transaction make it the
active version. A bad line aborts the whole import (with its line number and
reason) unless skipping was asked for; either way the old data keeps serving.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from sqlalchemy import Engine

from numlookup.datasets import catalog, distribution, ported
from numlookup.datasets.catalog import RANGES, DatasetKind
from numlookup.datasets.durable import sync_dir, sync_files
from numlookup.datasets.formats import LineError, PortedRecord, RangeRecord
from numlookup.datasets.ported import PortedBlock
from numlookup.numbering.interning import Interner
from numlookup.numbering.intervals import pad_high, pad_low
from numlookup.numbering.operator_data import DataNetwork, PortedMap, RangeMap

MAX_REPORTED_ERRORS = 100
R = TypeVar("R", RangeRecord, PortedRecord)


class ImportFailed(ValueError):
    """Nothing was imported; ``errors`` holds the bad lines found."""

    def __init__(self, message: str, errors: list[LineError] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


def line_errors(errors: Iterable[LineError]) -> list[dict[str, Any]]:
    return [{"line": e.line, "reason": e.reason} for e in errors]


@dataclass
class ImportReport:
    version: catalog.DatasetVersion
    seconds: float
    errors: list[LineError] = field(default_factory=list)  # skipped lines, at most MAX_REPORTED_ERRORS

    def as_dict(self) -> dict[str, Any]:
        """The report as the CLI's --json and the admin endpoint print it."""
        v = self.version
        return {
            "ok": True,
            "kind": v.kind,
            "version": v.version,
            "mode": v.mode,
            "rows": v.rows,
            "records": v.records,
            "skipped": v.skipped,
            "seconds": round(self.seconds, 3),
            "errors": line_errors(self.errors),
        }


class _Networks(Interner[DataNetwork]):
    """Interns a range file's (mccmnc, name) pairs into small integer indices."""

    def add(self, mccmnc: str, name: str | None) -> int:
        return self(DataNetwork(mccmnc, name))


class _Errors:
    """Bad lines: abort on the first, or count them all and keep the first hundred."""

    def __init__(self, skip_invalid: bool) -> None:
        self.skip_invalid = skip_invalid
        self.count = 0
        self.kept: list[LineError] = []

    def __call__(self, error: LineError) -> None:
        if not self.skip_invalid:
            raise ImportFailed(f"{error}; nothing was imported (use --skip-invalid to skip bad lines)", [error])
        self.count += 1
        if len(self.kept) < MAX_REPORTED_ERRORS:
            self.kept.append(error)


def _build_ranges(records: list[RangeRecord], previous: RangeMap | None, delta: bool) -> RangeMap:
    """Intervals keyed by their bounds; the third column orders equal widths (a later line wins)."""
    networks = _Networks(previous.networks if previous is not None and delta else ())
    intervals: dict[tuple[int, int], tuple[int, int]] = {}  # (low, high) -> (sequence, network)
    if previous is not None and delta:
        for (low, high, seq), value in zip(previous.intervals.tolist(), previous.interval_values.tolist(), strict=True):
            intervals[(low, high)] = (seq, value)
    sequence = max((seq for seq, _ in intervals.values()), default=0)
    for record in records:
        low, high = pad_low(record.low), pad_high(record.high)
        if record.action == "remove":
            if intervals.pop((low, high), None) is None:
                raise ImportFailed(
                    f"line {record.line}: cannot remove {record.low}-{record.high}: it is not in the dataset"
                )
            continue
        assert record.mccmnc is not None
        sequence += 1
        intervals.pop((low, high), None)
        intervals[(low, high)] = (sequence, networks.add(record.mccmnc, record.name))
    array = np.array([[low, high, seq] for (low, high), (seq, _) in intervals.items()], dtype=np.int64).reshape(-1, 3)
    values = np.array([value for _, value in intervals.values()], dtype=np.int32)
    return RangeMap.compile(array, values, networks.items)


def _of_kind(
    records: Iterable[RangeRecord | PortedRecord | PortedBlock | LineError], wanted: type[R]
) -> Iterator[R | LineError]:
    """The records of one kind; a record of the other kind is a bug in the reader that produced it."""
    for record in records:
        if not isinstance(record, wanted | LineError):
            raise TypeError(f"a {type(record).__name__} in a {wanted.__name__} import")
        yield record


def _write(folder: Path, compiled: RangeMap | PortedMap) -> None:
    """Build in a temporary folder, sync every file, then rename into place."""
    staging = folder.with_name(folder.name + ".partial")
    staging.mkdir(parents=True)
    try:
        compiled.save(staging)
        sync_files(staging.iterdir())
        staging.rename(folder)
        sync_dir(folder.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_version(engine: Engine, data_dir: Path, version: catalog.DatasetVersion) -> RangeMap | PortedMap:
    """Map a version's files, fetching the database's copy first if this node has none."""
    folder = distribution.ensure_local(engine, data_dir, version)
    return RangeMap.load(folder) if version.kind == RANGES else PortedMap.load(folder)


def import_dataset(
    engine: Engine,
    data_dir: Path,
    kind: DatasetKind,
    records: Iterable[RangeRecord | PortedRecord | PortedBlock | LineError],
    *,
    source: str,
    fmt: str,
    delta: bool = False,
    skip_invalid: bool = False,
    publish: bool = False,
    on_built: Callable[[], None] | None = None,
) -> ImportReport:
    """Validate every record, build the new version beside the live one, then activate it.

    With ``publish`` the compiled files are also stored in the database before
    the version is activated, so nodes without this data directory can fetch them.
    """
    started = time.perf_counter()
    errors = _Errors(skip_invalid)
    previous_version = catalog.active_versions(engine).get(kind)
    previous = load_version(engine, data_dir, previous_version) if previous_version is not None and delta else None
    built: RangeMap | PortedMap
    if kind == RANGES:
        good: list[RangeRecord] = []
        for record in _of_kind(records, RangeRecord):
            if isinstance(record, LineError):
                errors(record)
            else:
                good.append(record)
        count = len(good)
        built = _build_ranges(good, previous if isinstance(previous, RangeMap) else None, delta)
    else:
        try:
            built, count = ported.build(
                ported.blocks(records), errors, previous if isinstance(previous, PortedMap) else None, delta
            )
        except ported.TooManyNetworks as exc:
            raise ImportFailed(str(exc)) from None
    if count == 0 and not delta:
        raise ImportFailed("the file holds no valid rows; nothing was imported", errors.kept)
    relative = Path("datasets") / kind / f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    _write(data_dir / relative, built)
    if publish:
        try:
            distribution.publish(engine, data_dir, str(relative))
        except BaseException:
            shutil.rmtree(data_dir / relative, ignore_errors=True)
            raise
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
            rows=len(built),
            records=count,
            skipped=errors.count,
            path=str(relative),
            active=True,
            imported_at=datetime.now(UTC),
        ),
    )
    pruned = catalog.prune(engine, data_dir, kind)
    distribution.discard(engine, [v.path for v in pruned])
    return ImportReport(version=version, seconds=time.perf_counter() - started, errors=errors.kept)
