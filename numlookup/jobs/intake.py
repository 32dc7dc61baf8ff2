"""A job's submit: read the numbers as they stream in, resolve and stage them, reserve, and queue the job.

Memory stays flat whatever the upload's size: the body is cut into whole lines a
block at a time (``LineReader``), each block is parsed and resolved with the
bulk engine into chunks of at most ``job_chunk_numbers`` numbers (``cpu``, away
from the event loop), each chunk is written to the database as it comes
(``Stager``), and only each valid number's E.164 key (8 bytes) and each invalid
input's hash stay in memory, for the job-wide duplicate count (numpy
``unique``: about 0.2 GB for 10 million numbers, at the end of the upload).

Nothing is visible or charged until the whole upload has been read and found
good: staged chunks belong to a job in the internal status ``RECEIVING``, which
no listing shows and no worker claims. The last step is one transaction: the
reservation (``billing.reservations.reserve``, refused without changing anything
if the balance does not cover it), each chunk's charged rows and reserve, and
the job turned ``QUEUED``. On a refusal the request deletes what it staged; a
request that died mid-upload leaves a ``RECEIVING`` job the sweeper deletes
(``queue.sweep``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine, bindparam, insert, select, update

from numlookup.billing import reservations
from numlookup.billing.prices import Prices
from numlookup.jobs import events
from numlookup.jobs.cpu import MAX_INPUT_CHARS, MAX_LINE_BYTES, NEWLINE, Lines, Piece, Staged, UploadError
from numlookup.jobs.model import (
    CALLBACK_URL_PATTERN,
    FRIENDLY_NAME_PATTERN,
    MAX_CALLBACK_URL,
    MAX_FRIENDLY_NAME,
    RECEIVING,
    JobRecord,
    new_job_id,
)
from numlookup.jobs.queue import delete_job
from numlookup.status import StatusStyle
from numlookup.store.engine import write_transaction
from numlookup.store.tables import job_chunks, jobs

__all__ = ["MAX_INPUT_CHARS", "UploadError"]


class TooManyNumbers(UploadError):
    """More numbers than ``max_job_numbers`` (400, code 103)."""

    def __init__(self, count: int, limit: int) -> None:
        super().__init__(f"the job has more than {limit} numbers")
        self.count = count
        self.limit = limit


class LineReader:
    """Cuts an upload, fed in blocks, into whole lines for ``cpu.stage_lines``: one number a line, or a CSV column.

    The lines are read as ``numlookup lookup --input`` reads a file (blank lines
    skipped, each number stripped, ``header`` skips the first line, a row too
    short for the column gives an empty input), so a job's results and the
    CLI's agree. But a request body is not trusted as a file on disk is: it must
    be UTF-8 (a BOM is dropped), hold no NUL byte, no line over
    ``MAX_LINE_BYTES`` and no number over ``MAX_INPUT_CHARS`` (checked where the
    lines are parsed, ``cpu.parse_lines``). Here only the cheap part is done:
    finding the last line end and counting lines.
    """

    def __init__(self, column: int | None = None, header: bool = False) -> None:
        self.column = column
        self.header = header
        self._rest = b""
        self._lines = 0  # lines cut so far

    def feed(self, data: bytes) -> Lines | None:
        """The whole lines so far; a trailing partial line waits for the next block."""
        data = self._rest + data
        cut = data.rfind(NEWLINE) + 1
        self._rest = data[cut:]
        if len(self._rest) > MAX_LINE_BYTES:
            line = self._lines + data.count(NEWLINE, 0, cut) + 1
            raise UploadError(f"line {line} is longer than {MAX_LINE_BYTES} bytes")
        return self._cut(data[:cut]) if cut else None

    def finish(self) -> Lines | None:
        """The last line (the body need not end with a newline)."""
        rest, self._rest = self._rest, b""
        return self._cut(rest) if rest else None

    def _cut(self, block: bytes) -> Lines:
        first = self._lines + 1
        self._lines += block.count(NEWLINE)
        return Lines(block, first, self.column, self.header and first == 1)


def check_callback_url(url: str) -> str:
    """``url`` if it is an absolute http(s) URL with a host and no credentials (``CALLBACK_URL_PATTERN``).

    Credentials in the URL would be shown in every job object and event; whether
    the host may be reached at all (private addresses) is the webhook sender's to decide.
    """
    if len(url) > MAX_CALLBACK_URL or re.fullmatch(CALLBACK_URL_PATTERN, url) is None:
        raise ValueError(
            f"callback_url must be an absolute http:// or https:// URL with a host, no credentials "
            f"and at most {MAX_CALLBACK_URL} printable ASCII characters"
        )
    return url


def check_friendly_name(name: str) -> str:
    if len(name) > MAX_FRIENDLY_NAME or re.fullmatch(FRIENDLY_NAME_PATTERN, name) is None:
        raise ValueError(
            f"friendly_name must be at most {MAX_FRIENDLY_NAME} characters, none of them control characters"
        )
    return name


OnQueued = Callable[[Connection, JobRecord], None]


@dataclass(frozen=True, slots=True)
class JobOptions:
    """What the client asked besides the numbers (already checked)."""

    friendly_name: str | None = None
    callback_url: str | None = None
    max_age: float | None = None


@dataclass(frozen=True, slots=True)
class JobTerms:
    """Who pays and how much: the account, its prices per answer class (fixed at submit), its status words."""

    account_id: int
    prices: Prices
    account_price: int | None
    style: StatusStyle


@dataclass
class _Chunk:
    seq: int
    rows: int
    valid: npt.NDArray[np.bool_]  # per row: a chargeable (valid) number


@dataclass
class Stager:
    """Stages an upload's resolved chunks (``cpu.Staged``) as they come, then reserves and queues the job.

    Its methods write to the database: call them from a worker thread.
    """

    engine: Engine
    terms: JobTerms
    options: JobOptions
    max_numbers: int
    retention: timedelta
    job_id: int | None = None
    public_id: str = field(default_factory=new_job_id)
    count: int = 0
    _chunks: list[_Chunk] = field(default_factory=list)
    _keys: list[npt.NDArray[np.int64]] = field(default_factory=list)  # the valid rows' E.164 digits, in order
    _routed: list[npt.NDArray[np.bool_]] = field(default_factory=list)  # the valid rows': live-routed?
    _invalid: list[npt.NDArray[np.int64]] = field(default_factory=list)  # hashes of the invalid inputs

    def check(self, more: int) -> None:
        """TooManyNumbers if ``more`` numbers would take the job over ``max_numbers``."""
        if self.count + more > self.max_numbers:
            raise TooManyNumbers(self.count + more, self.max_numbers)

    def add(self, staged: Staged) -> None:
        self.check(staged.numbers)
        self.count += staged.numbers
        for piece in staged.pieces:
            self._write(piece)

    def _write(self, piece: Piece) -> None:
        now = datetime.now(UTC)
        seq = len(self._chunks)
        with write_transaction(self.engine) as conn:
            if self.job_id is None:
                self.job_id = conn.execute(insert(jobs).values(**self._new_job(now)).returning(jobs.c.id)).scalar_one()
            else:
                conn.execute(update(jobs).where(jobs.c.id == self.job_id).values(updated_at=now))
            conn.execute(
                insert(job_chunks).values(
                    job_id=self.job_id,
                    seq=seq,
                    rows=piece.rows,
                    routed=piece.routed_rows,
                    state="pending",
                    reserve=0,
                    attempts=0,
                    prepared=piece.blob,
                )
            )
        valid = np.unpackbits(np.frombuffer(piece.valid, dtype=np.uint8), count=piece.rows).astype(np.bool_)
        self._chunks.append(_Chunk(seq, piece.rows, valid))
        self._keys.append(np.frombuffer(piece.keys, dtype=np.int64))
        self._routed.append(np.frombuffer(piece.routed, dtype=np.bool_))
        self._invalid.append(np.frombuffer(piece.invalid, dtype=np.int64))

    def _new_job(self, now: datetime) -> dict[str, object]:
        terms, prices = self.terms, self.terms.prices
        return {
            "public_id": self.public_id,
            "account_id": terms.account_id,
            "status": RECEIVING,
            "friendly_name": self.options.friendly_name,
            "callback_url": self.options.callback_url,
            "max_age": self.options.max_age,
            "style": terms.style,
            "price_offline": prices.of("offline", terms.account_price),
            "price_cache": prices.of("cache", terms.account_price),
            "price_live": prices.of("live", terms.account_price),
            "total_count": 0,
            "processed_count": 0,
            "valid_count": 0,
            "invalid_count": 0,
            "duplicate_count": 0,
            "reserved": 0,
            "charged": 0,
            "chunks_total": 0,
            "chunks_done": 0,
            "created_at": now,
            "updated_at": now,
            "claimed_at": now,
        }

    def finish(self, on_queued: OnQueued | None = None) -> JobRecord:
        """Count, reserve and queue; InsufficientCredits (nothing reserved) if the balance is short.

        ``on_queued(conn, job)`` runs inside the transaction that reserves and
        queues the job: what must commit with it (the response an
        Idempotency-Key replays) or not at all.
        """
        if not self.count:
            return self._empty(on_queued)
        assert self.job_id is not None
        keys = np.concatenate(self._keys)
        routed = np.concatenate(self._routed)
        first = np.zeros(len(keys), dtype=np.bool_)
        first[np.unique(keys, return_index=True)[1]] = True  # a number's first occurrence in the job
        valid_count = int(first.sum())
        invalid_count = len(np.unique(np.concatenate(self._invalid)))
        terms = self.terms
        dearest, offline = terms.prices.dearest(terms.account_price), terms.prices.of("offline", terms.account_price)
        updates: list[dict[str, object]] = []
        offset = 0
        for chunk in self._chunks:
            rows = int(chunk.valid.sum())
            here, live = first[offset : offset + rows], routed[offset : offset + rows]
            offset += rows
            firsts = np.zeros(chunk.rows, dtype=np.bool_)
            firsts[np.flatnonzero(chunk.valid)] = here
            routed_here = int((here & live).sum())
            reserve = terms.prices.reserve(int(here.sum()) - routed_here, routed_here, terms.account_price)
            updates.append({"b_seq": chunk.seq, "b_firsts": np.packbits(firsts).tobytes(), "b_reserve": reserve})
        total = sum(int(u["b_reserve"]) for u in updates)  # type: ignore[call-overload]  # ints, put there above
        routed_count = int((first & routed).sum())
        assert total == routed_count * dearest + (valid_count - routed_count) * offline
        now = datetime.now(UTC)
        with write_transaction(self.engine) as conn:
            reservations.reserve(conn, terms.account_id, total)
            conn.execute(
                update(job_chunks)
                .where(job_chunks.c.job_id == self.job_id, job_chunks.c.seq == bindparam("b_seq"))
                .values(firsts=bindparam("b_firsts"), reserve=bindparam("b_reserve")),
                updates,
            )
            conn.execute(
                update(jobs)
                .where(jobs.c.id == self.job_id)
                .values(
                    status="QUEUED",
                    total_count=self.count,
                    valid_count=valid_count,
                    invalid_count=invalid_count,
                    duplicate_count=self.count - valid_count - invalid_count,
                    reserved=total,
                    chunks_total=len(self._chunks),
                    updated_at=now,
                    claimed_at=now,
                )
            )
            job = JobRecord.from_row(conn.execute(select(jobs).where(jobs.c.id == self.job_id)).one())
            if on_queued is not None:
                on_queued(conn, job)
        return job

    def _empty(self, on_queued: OnQueued | None) -> JobRecord:
        """A file without a number: a job of none, COMPLETED at once (a JSON body must list one at least)."""
        now = datetime.now(UTC)
        values = {**self._new_job(now), "status": "COMPLETED", "started_at": now, "completed_at": now}
        with write_transaction(self.engine) as conn:
            job_id = conn.execute(
                insert(jobs).values(**values, expires_at=now + self.retention).returning(jobs.c.id)
            ).scalar_one()
            job = JobRecord.from_row(conn.execute(select(jobs).where(jobs.c.id == job_id)).one())
            events.job_ended(conn, job, now)
            if on_queued is not None:
                on_queued(conn, job)
        return job

    def discard(self) -> None:
        """Delete what was staged: the upload was refused, or its request failed."""
        if self.job_id is None:
            return
        with write_transaction(self.engine) as conn:
            status = conn.execute(select(jobs.c.status).where(jobs.c.id == self.job_id)).scalar()
            if status == RECEIVING:  # never a job that was queued: that one is the client's
                delete_job(conn, self.job_id)
        self.job_id = None
