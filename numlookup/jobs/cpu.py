"""A job's CPU-heavy steps, where they cannot slow the sync API: reading and resolving an upload, rendering a chunk.

Why a process: a serve worker's threads share one interpreter lock with its
event loop. Resolving a million-number upload and rendering its chunks in a
thread held that lock for long stretches, and the sync call's p99 went from 24 ms
to 117 ms while a job ran (bench/jobs.py). So a serve worker runs these steps in
a process of its own (``CpuProcess``: one per worker, started by its first job),
and its event loop only moves bytes to and from it and the database. A dedicated
``numlookup jobs work`` process serves no requests and runs them in a thread
(``CpuThread``). Both run the module functions below, on a resolver that follows
the active dataset versions as the serve workers' does.

What crosses between the processes is small: an upload block (a megabyte of
lines) one way and the staged chunks (compressed) back; a chunk's stored form
and its live results one way and the rendered results back.
"""

from __future__ import annotations

import asyncio
import csv
import math
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, ParamSpec, Protocol, TypeVar

import anyio.to_thread
import numpy as np
from sqlalchemy import Engine

from numlookup.jobs import prepared, render
from numlookup.live.router import NO_ROUTE, Router
from numlookup.live.service import LiveResult
from numlookup.numbering import Resolver
from numlookup.numbering.models import Resolution
from numlookup.settings import Settings
from numlookup.status import StatusStyle

NEWLINE = b"\n"
MAX_LINE_BYTES = 64 * 1024  # a line (a CSV row) longer than this is no list of numbers
MAX_INPUT_CHARS = 1024  # one number's text, as given
# A chunk holds at most this many live-routed rows: live answers take far longer than
# offline ones, and a chunk is the unit of progress, of charging and of redoing after a crash.
MAX_ROUTED_PER_CHUNK = 1_000
# How much lower than its serve worker a job process's CPU priority is (nice(2): 10 is the usual "background").
NICENESS = 10


class UploadError(ValueError):
    """The body is not a readable list of numbers (400, code 102); the message says where and why."""


@dataclass(frozen=True, slots=True)
class Lines:
    """Whole lines of an upload, cut by the reader: ``first_line`` is the number of the first (from 1)."""

    data: bytes
    first_line: int
    column: int | None = None
    header: bool = False  # the first line of the upload is a header, and this block begins with it


@dataclass(frozen=True, slots=True)
class Piece:
    """One staged chunk: its stored form, and what the job-wide duplicate count needs of it."""

    rows: int
    routed_rows: int
    blob: bytes  # prepared.encode
    valid: bytes  # packed bits: the row is a chargeable (valid) number
    keys: bytes  # int64: the valid rows' E.164 digits, in order
    routed: bytes  # bool: the valid rows' live-routed, in order
    invalid: bytes  # int64: hashes of the invalid rows' inputs, in order


@dataclass(frozen=True, slots=True)
class Staged:
    numbers: int
    pieces: list[Piece]


# ---------------------------------------------------------------------------------------------- the steps


def parse_lines(lines: Lines) -> list[str]:
    """The numbers of whole lines, read as ``numlookup lookup --input`` reads a file (see ``intake.LineReader``)."""
    block = lines.data
    if (nul := block.find(b"\x00")) >= 0:
        line = lines.first_line + block.count(NEWLINE, 0, nul)
        raise UploadError(f"line {line} holds a NUL byte: not a text file")
    try:
        text = block.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = lines.first_line + block.count(NEWLINE, 0, exc.start)
        raise UploadError(f"line {line} is not UTF-8 text") from None
    if lines.first_line == 1:
        text = text.removeprefix("\ufeff")
    rows = _split_lines(text)
    first_line = lines.first_line
    if lines.header:
        rows, first_line = rows[1:], first_line + 1
    numbers = _pick(rows, lines.column, first_line)
    long = next((i for i, number in enumerate(numbers) if len(number) > MAX_INPUT_CHARS), None)
    if long is not None:
        raise UploadError(f"a number near line {first_line + long} is longer than {MAX_INPUT_CHARS} characters")
    return numbers


def _split_lines(text: str) -> list[str]:
    """Lines ending in ``\\n``, ``\\r\\n`` or a lone ``\\r``, as ``bulk_input`` splits them (not ``str.splitlines``,
    which also splits on form feeds and U+2028)."""
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    rows = text.split("\n")
    if rows[-1] == "":
        rows.pop()
    return rows


def _pick(rows: list[str], column: int | None, first_line: int) -> list[str]:
    """Every line is a row, a blank one too (its number ``""``, invalid and free), as the bulk CLI reads a file."""
    if column is None:
        return [row.strip() for row in rows]
    picked = []
    try:
        for fields in csv.reader(rows):
            picked.append(fields[column].strip() if column < len(fields) else "")
    except csv.Error as exc:
        raise UploadError(f"the CSV near line {first_line} cannot be read: {exc}") from None
    return picked


def stage_lines(lines: Lines, chunk_numbers: int) -> Staged:
    numbers = parse_lines(lines)
    return Staged(len(numbers), _pieces(numbers, chunk_numbers))


def stage_numbers(numbers: Sequence[str], chunk_numbers: int) -> Staged:
    return Staged(len(numbers), _pieces(numbers, chunk_numbers))


def _pieces(numbers: Sequence[str], chunk_numbers: int) -> list[Piece]:
    """Resolve ``numbers`` in batches of at most ``chunk_numbers`` (of even size), each cut where it holds
    ``MAX_ROUTED_PER_CHUNK`` live-routed rows."""
    if not numbers:
        return []  # a block of a header line alone
    worker = _current()
    resolver = worker.resolver()
    pieces: list[Piece] = []
    batches = max(1, math.ceil(len(numbers) / chunk_numbers))
    size = math.ceil(len(numbers) / batches)
    for start in range(0, len(numbers), size):
        batch = numbers[start : start + size]
        columns = resolver.resolve_columns(batch)
        routes = np.full(len(batch), NO_ROUTE, dtype=np.int16)
        if worker.router is not None:
            current = np.where(columns.ported >= 0, columns.ported, columns.original)
            routes = worker.router.route_rows(columns.batch.digits, columns.original, current, columns.networks)
        whole = prepared.Prepared(columns, routes)
        routed_rows = np.flatnonzero(routes != NO_ROUTE)
        cuts = [0, *routed_rows[MAX_ROUTED_PER_CHUNK::MAX_ROUTED_PER_CHUNK].tolist(), len(batch)]
        for low, high in zip(cuts, cuts[1:], strict=False):
            pieces.append(_piece(prepared.piece(whole, low, high) if (low, high) != (0, len(batch)) else whole))
    return pieces


def _piece(chunk: prepared.Prepared) -> Piece:
    columns = chunk.columns
    valid = prepared.chargeable(columns)
    inputs = columns.inputs
    invalid = np.array([hash(inputs[i]) for i in np.flatnonzero(~valid).tolist()], dtype=np.int64)
    return Piece(
        rows=len(columns),
        routed_rows=int((chunk.routes != NO_ROUTE).sum()),
        blob=prepared.encode(chunk),
        valid=np.packbits(valid).tobytes(),
        keys=columns.batch.digits[valid].tobytes(),
        routed=(chunk.routes[valid] != NO_ROUTE).tobytes(),
        invalid=invalid.tobytes(),
    )


def routed(blob: bytes) -> list[tuple[int, Resolution]]:
    """The rows of a stored chunk that have a live route, with their resolutions (what the live service takes)."""
    chunk = prepared.decode(blob)
    rows = np.flatnonzero(chunk.routes != NO_ROUTE).tolist()
    return [(row, chunk.columns.resolution(row)) for row in rows]


def render_chunk(blob: bytes, style: StatusStyle, checked_at: str, live: dict[int, LiveResult]) -> tuple[bytes, int]:
    """A stored chunk's results (``render.build``), with its live rows' answers, and its distinct invalid inputs.

    The count is for the chunk's ledger row (``billing.ledger.Counts``), taken
    here because the chunk is decoded here anyway; a blank line is no input.
    """
    columns = prepared.decode(blob).columns
    inputs = columns.inputs
    invalid = {inputs[i] for i in np.flatnonzero(~prepared.chargeable(columns)).tolist() if inputs[i].strip()}
    return render.build(columns, style, checked_at, live), len(invalid)


# ---------------------------------------------------------------------------------------------- per process


class _Worker:
    """What the steps need in the process that runs them: a resolver on the active datasets, the routes."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        from numlookup.datasets.follower import load_operator_data
        from numlookup.numbering.resolver import shared_plan
        from numlookup.store import make_engine

        self.settings = settings
        self.engine = engine or make_engine(
            settings.effective_database_url, sqlite_synchronous=settings.sqlite_synchronous, create=False
        )
        router = Router.from_settings(settings)
        self.router = router if router.sources else None
        self._resolver = Resolver(
            operator=load_operator_data(self.engine, settings.data_path), plan=shared_plan(settings.data_path / "cache")
        )
        self._checked = time.monotonic()

    def resolver(self) -> Resolver:
        """The resolver, on the newest dataset versions (checked at most every ``dataset_poll_seconds``)."""
        from numlookup.datasets.follower import refresh

        if time.monotonic() - self._checked >= self.settings.dataset_poll_seconds:
            refresh(self._resolver, self.engine, self.settings.data_path)
            self._checked = time.monotonic()
        return self._resolver


_worker: _Worker | None = None
_local = threading.local()  # a CpuThread's own worker, for the step it runs in this thread


def init(settings: Settings, niceness: int = 0) -> None:
    """Set this process up to run the steps (a pool process's initializer), at a lower CPU priority if asked."""
    global _worker
    if niceness:
        os.nice(niceness)
    _worker = _Worker(settings)


def _current() -> _Worker:
    worker: _Worker | None = getattr(_local, "worker", None) or _worker
    assert worker is not None, "jobs.cpu.init was not called in this process"
    return worker


# ---------------------------------------------------------------------------------------------- where they run

P = ParamSpec("P")
R = TypeVar("R")


class Cpu(Protocol):
    """Runs the steps somewhere: ``await cpu.run(stage_lines, lines, 50_000)``."""

    async def run(self, step: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R: ...

    def close(self) -> None: ...


class CpuThread:
    """In a thread of this process: for a process that serves no requests (``numlookup jobs work``), and tests."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self._settings = settings
        self._engine = engine
        self._worker: _Worker | None = None
        self._lock = threading.Lock()

    def _own(self) -> _Worker:
        with self._lock:
            if self._worker is None:
                self._worker = _Worker(self._settings, self._engine)
            return self._worker

    async def run(self, step: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        def call() -> R:
            _local.worker = self._own()
            try:
                return step(*args, **kwargs)
            finally:
                _local.worker = None

        return await anyio.to_thread.run_sync(call)

    def close(self) -> None:
        pass


class CpuProcess:
    """In one process of its own, started at the first step; a pool that broke (its process killed) is replaced.

    The process runs ``NICENESS`` steps below its serve worker: when the CPUs are
    busy, the kernel gives them to sync requests first and to jobs what is left.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=init,
                initargs=(self._settings, NICENESS),
            )
        return self._pool

    async def run(self, step: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        loop = asyncio.get_running_loop()
        pool = self._executor()
        try:
            return await loop.run_in_executor(pool, _call, step, args, kwargs)
        except BrokenProcessPool:
            self._pool = None
            pool.shutdown(wait=False)
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


def _call(step: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
    return step(*args, **kwargs)
