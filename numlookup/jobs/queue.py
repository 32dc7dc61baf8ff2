"""Jobs in the database: claiming chunks under a lease, settling them, stopping, failing, sweeping, reading.

Every state change is one transaction, so a worker killed at any instant leaves
either the chunk as it was (its lease runs out and any worker takes it over) or
the chunk done, with its results, its charge and its ledger row together.

**Claims.** A worker takes the first free chunk (its lease empty or expired) of
the active job served longest ago (``claimed_at``, moved by each settlement: jobs
take turns, and a small job is not stuck behind a big one). On PostgreSQL the
candidate row is locked with ``FOR UPDATE SKIP LOCKED``, so workers on every node
claim different chunks without waiting on each other; on SQLite the single
writer serialises claims. A claim is one transaction (a job's first also turns
it IN_PROGRESS), a settlement another.

**Settling.** ``settle`` locks the job's row first, then checks that the chunk
is still this worker's (a takeover changes ``lease_owner``, and a worker whose
lease was taken over finds its work refused), and only then stores the results,
charges the chunk from its reservation and counts it. The job's row lock orders
concurrent settlements of one job, so the one that finishes the last chunk sees
all the others and ends the job. Locks are always taken job row, then account
row: no deadlock with sync charges, which lock the account row alone.

**Ends.** COMPLETED when the last chunk is settled; STOPPED on request once no
chunk is in flight (at once if none is); FAILED when a chunk could not be
processed ``MAX_ATTEMPTS`` times. Every end releases what the job still holds,
sets ``expires_at`` and hands the event to ``events`` in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, Connection, Engine, and_, case, delete, exists, func, insert, or_, select, update

from numlookup.billing import reservations
from numlookup.billing.ledger import Counts
from numlookup.jobs import events
from numlookup.jobs.model import ACTIVE, FINISHED, RECEIVING, SETTLEABLE, JobRecord
from numlookup.store.engine import write_transaction
from numlookup.store.tables import job_chunks, job_results, jobs

# Claims of one chunk before its job fails: a chunk that kills or fails every worker that takes it.
MAX_ATTEMPTS = 5
# An upload (RECEIVING) untouched this long belongs to a request that died.
STALE_UPLOAD = timedelta(hours=1)
# Expired jobs deleted per sweep, each in its own transaction.
DELETE_BATCH = 20


@dataclass(frozen=True, slots=True)
class Claim:
    """A chunk a worker holds: its job (as claimed), rows, what was reserved for it, its charged rows, its input."""

    job: JobRecord
    seq: int
    rows: int
    routed: int
    reserve: int
    firsts: bytes
    prepared: bytes
    attempts: int
    last_error: str | None

    @property
    def reference(self) -> str:
        """The chunk's ledger ``request_id``: names the job, unique per chunk."""
        return f"{self.job.public_id}/{self.seq}"


def _record(conn: Connection, job_id: int) -> JobRecord:
    return JobRecord.from_row(conn.execute(select(jobs).where(jobs.c.id == job_id)).one())


def _leased(conn: Connection, job_id: int, now: datetime) -> bool:
    """Whether a chunk of the job is in a worker's hands right now."""
    held = select(job_chunks.c.seq).where(
        job_chunks.c.job_id == job_id,
        job_chunks.c.state == "pending",
        job_chunks.c.lease_owner.is_not(None),
        job_chunks.c.lease_until > now,
    )
    return bool(conn.execute(select(exists(held))).scalar())


def claim(engine: Engine, owner: str, lease_seconds: float, now: datetime | None = None) -> Claim | None:
    """Take the next free chunk for ``lease_seconds``; None when there is nothing to do."""
    now = now or datetime.now(UTC)
    with write_transaction(engine) as conn:
        found = conn.execute(
            select(job_chunks.c.job_id, job_chunks.c.seq, jobs.c.status)
            .select_from(job_chunks.join(jobs, jobs.c.id == job_chunks.c.job_id))
            .where(
                jobs.c.status.in_(ACTIVE),
                job_chunks.c.state == "pending",
                or_(job_chunks.c.lease_until.is_(None), job_chunks.c.lease_until < now),
            )
            .order_by(jobs.c.claimed_at, jobs.c.id, job_chunks.c.seq)
            .limit(1)
            .with_for_update(skip_locked=True, of=job_chunks)
        ).first()
        if found is None:
            return None
        chunk = conn.execute(
            update(job_chunks)
            .where(job_chunks.c.job_id == found.job_id, job_chunks.c.seq == found.seq)
            .values(
                lease_owner=owner,
                lease_until=now + timedelta(seconds=lease_seconds),
                attempts=job_chunks.c.attempts + 1,
            )
            .returning(
                job_chunks.c.rows,
                job_chunks.c.routed,
                job_chunks.c.reserve,
                job_chunks.c.firsts,
                job_chunks.c.prepared,
                job_chunks.c.attempts,
                job_chunks.c.last_error,
            )
        ).one()
    # A job's first claim starts it, in a transaction of its own: a claim never holds a chunk's lock while
    # it waits for a job's (settle takes them the other way round). Later claims leave the job's row alone.
    if found.status == "QUEUED":
        with write_transaction(engine) as conn:
            conn.execute(
                update(jobs)
                .where(jobs.c.id == found.job_id, jobs.c.status == "QUEUED")
                .values(status="IN_PROGRESS", started_at=now, updated_at=now)
            )
    with engine.connect() as conn:
        job = _record(conn, found.job_id)
    return Claim(
        job,
        found.seq,
        chunk.rows,
        chunk.routed,
        chunk.reserve,
        chunk.firsts or b"",
        chunk.prepared,
        chunk.attempts,
        chunk.last_error,
    )


def renew(engine: Engine, claim: Claim, owner: str, lease_seconds: float) -> bool:
    """Extend the lease; False if the chunk is no longer this worker's (taken over, or settled)."""
    until = datetime.now(UTC) + timedelta(seconds=lease_seconds)
    with write_transaction(engine) as conn:
        done = conn.execute(update(job_chunks).where(*_mine(claim, owner)).values(lease_until=until))
    return done.rowcount == 1


def _mine(claim: Claim, owner: str) -> tuple[ColumnElement[bool], ...]:
    return (
        job_chunks.c.job_id == claim.job.id,
        job_chunks.c.seq == claim.seq,
        job_chunks.c.state == "pending",
        job_chunks.c.lease_owner == owner,
    )


def abandon(engine: Engine, claim: Claim, owner: str, error: str) -> None:
    """Give the chunk back at once (its processing failed, or the worker is stopping), noting why."""
    with write_transaction(engine) as conn:
        conn.execute(
            update(job_chunks)
            .where(*_mine(claim, owner))
            .values(lease_owner=None, lease_until=None, last_error=error[:2000])
        )


Store = Callable[[Connection], Callable[[], None] | None]


def settle(
    engine: Engine,
    claim: Claim,
    owner: str,
    *,
    data: bytes,
    amount: int,
    numbers: int,
    retention: timedelta,
    store: Store | None = None,
    counts: Counts | None = None,
) -> tuple[JobRecord, Callable[[], None] | None] | None:
    """Store the chunk's results and charge it (``amount`` for ``numbers`` lookups) from its reservation.

    ``counts`` (the numbers by answer class) go in the chunk's ledger row.

    One transaction; None (nothing written) when the chunk is no longer this
    worker's or its job has ended. ``store`` adds the live layer's rows (fresh
    answers, usage) to the same transaction and may return what to run after
    the commit, which is returned with the job as it is now.
    """
    now = datetime.now(UTC)
    with write_transaction(engine) as conn:
        job = conn.execute(select(jobs.c.status).where(jobs.c.id == claim.job.id).with_for_update()).first()
        if job is None or job.status not in SETTLEABLE:
            return None
        done = conn.execute(
            update(job_chunks)
            .where(*_mine(claim, owner))
            .values(state="done", lease_owner=None, lease_until=None, charged=amount, prepared=b"", firsts=None)
        )
        if done.rowcount != 1:
            return None
        conn.execute(insert(job_results).values(job_id=claim.job.id, seq=claim.seq, rows=claim.rows, data=data))
        reservations.settle(conn, claim.job.account_id, claim.reference, amount, numbers, claim.reserve, now, counts)
        conn.execute(
            update(jobs)
            .where(jobs.c.id == claim.job.id)
            .values(
                processed_count=jobs.c.processed_count + claim.rows,
                charged=jobs.c.charged + amount,
                reserved=jobs.c.reserved - claim.reserve,
                chunks_done=jobs.c.chunks_done + 1,
                updated_at=now,
                claimed_at=now,  # jobs take turns: the next claim goes to the job served longest ago
                started_at=func.coalesce(jobs.c.started_at, now),
                status=case((jobs.c.status == "QUEUED", "IN_PROGRESS"), else_=jobs.c.status),
            )
        )
        record = _record(conn, claim.job.id)
        if record.chunks_done == record.chunks_total:
            record = _end(conn, record, "COMPLETED", now, retention)
        elif record.status == "STOP_REQUESTED" and not _leased(conn, record.id, now):
            record = _end(conn, record, "STOPPED", now, retention)
        after = store(conn) if store is not None else None
    return record, after


def _end(
    conn: Connection, job: JobRecord, status: str, now: datetime, retention: timedelta, error: str | None = None
) -> JobRecord:
    """Inside a transaction holding the job's row: end it, release what it holds, hand over its event."""
    reservations.release(conn, job.account_id, job.reserved)
    conn.execute(
        update(jobs)
        .where(jobs.c.id == job.id)
        .values(status=status, reserved=0, error=error, completed_at=now, expires_at=now + retention, updated_at=now)
    )
    ended = _record(conn, job.id)
    events.job_ended(conn, ended, now)
    return ended


def _locked(conn: Connection, public_id: str, account_id: int | None) -> JobRecord | None:
    query = select(jobs).where(jobs.c.public_id == public_id, jobs.c.status != RECEIVING)
    if account_id is not None:
        query = query.where(jobs.c.account_id == account_id)
    row = conn.execute(query.with_for_update()).first()
    return None if row is None else JobRecord.from_row(row)


def stop(engine: Engine, public_id: str, account_id: int | None, retention: timedelta) -> tuple[JobRecord, str] | None:
    """Ask a job to stop; (the job now, its status before), or None if there is no such job (of that account).

    A job with no chunk in a worker's hands stops at once (STOPPED); otherwise it
    is STOP_REQUESTED until those chunks are settled (or their leases expire).
    Stopping a job that has ended changes nothing.
    """
    now = datetime.now(UTC)
    with write_transaction(engine) as conn:
        job = _locked(conn, public_id, account_id)
        if job is None:
            return None
        before = job.status
        if before in ACTIVE:
            if _leased(conn, job.id, now):
                conn.execute(update(jobs).where(jobs.c.id == job.id).values(status="STOP_REQUESTED", updated_at=now))
                job = _record(conn, job.id)
            else:
                job = _end(conn, job, "STOPPED", now, retention)
        return job, before


def fail(engine: Engine, job_id: int, error: str, retention: timedelta) -> JobRecord | None:
    """End a job FAILED (an unrecoverable error): its processed part stays charged and served, the rest is released."""
    now = datetime.now(UTC)
    with write_transaction(engine) as conn:
        row = conn.execute(select(jobs).where(jobs.c.id == job_id).with_for_update()).first()
        if row is None or row.status not in SETTLEABLE:
            return None
        return _end(conn, JobRecord.from_row(row), "FAILED", now, retention, error[:2000])


def delete_job(conn: Connection, job_id: int) -> None:
    """A job and everything of it (children first: SQLite enforces the cascade only with its pragma on)."""
    conn.execute(delete(job_results).where(job_results.c.job_id == job_id))
    conn.execute(delete(job_chunks).where(job_chunks.c.job_id == job_id))
    conn.execute(delete(jobs).where(jobs.c.id == job_id))


@dataclass(frozen=True, slots=True)
class Swept:
    stopped: int
    deleted: int
    abandoned_uploads: int


def sweep(engine: Engine, retention: timedelta, now: datetime | None = None) -> Swept:
    """Housekeeping any worker does now and then: end stops whose workers died, delete expired jobs and dead uploads."""
    now = now or datetime.now(UTC)
    with engine.connect() as conn:
        stopping = conn.execute(select(jobs.c.public_id).where(jobs.c.status == "STOP_REQUESTED")).scalars().all()
        expired = (
            conn.execute(
                select(jobs.c.id)
                .where(
                    or_(
                        and_(jobs.c.status.in_(FINISHED), jobs.c.expires_at < now),
                        and_(jobs.c.status == RECEIVING, jobs.c.updated_at < now - STALE_UPLOAD),
                    )
                )
                .limit(DELETE_BATCH)
            )
            .scalars()
            .all()
        )
        uploads = set(
            conn.execute(select(jobs.c.id).where(jobs.c.id.in_(expired), jobs.c.status == RECEIVING)).scalars().all()
        )
    stopped = 0
    for public_id in stopping:
        with write_transaction(engine) as conn:
            job = _locked(conn, public_id, None)
            if job is not None and job.status == "STOP_REQUESTED" and not _leased(conn, job.id, now):
                _end(conn, job, "STOPPED", now, retention)
                stopped += 1
    for job_id in expired:
        with write_transaction(engine) as conn:
            delete_job(conn, job_id)
    return Swept(stopped, len(expired) - len(uploads), len(uploads))


# ---------------------------------------------------------------------------------------------- reading


class BadCursor(ValueError):
    """A ``cursor`` that names no job of the account (mistyped, or its job was deleted)."""


def get(engine: Engine, public_id: str, account_id: int | None = None) -> JobRecord | None:
    """The job, if it exists (and is ``account_id``'s, when given); an upload in progress is no job yet."""
    query = select(jobs).where(jobs.c.public_id == public_id, jobs.c.status != RECEIVING)
    if account_id is not None:
        query = query.where(jobs.c.account_id == account_id)
    with engine.connect() as conn:
        row = conn.execute(query).first()
    return None if row is None else JobRecord.from_row(row)


def page(
    engine: Engine,
    account_id: int | None,
    limit: int,
    cursor: str | None = None,
    status: str | None = None,
) -> tuple[list[JobRecord], str | None]:
    """Jobs newest first, ``limit`` at a time, after the job ``cursor`` names; and the next page's cursor.

    The cursor is the id of the last job of the previous page: stable while new
    jobs arrive (they come before it), and meaningless to another account.
    """
    query = select(jobs).where(jobs.c.status != RECEIVING)
    if account_id is not None:
        query = query.where(jobs.c.account_id == account_id)
    if status is not None:
        query = query.where(jobs.c.status == status)
    with engine.connect() as conn:
        if cursor is not None:
            after = select(jobs.c.id).where(jobs.c.public_id == cursor, jobs.c.status != RECEIVING)
            if account_id is not None:
                after = after.where(jobs.c.account_id == account_id)
            position = conn.execute(after).scalar()
            if position is None:
                raise BadCursor(f"the cursor {cursor!r} names no job of this account")
            query = query.where(jobs.c.id < position)
        rows = conn.execute(query.order_by(jobs.c.id.desc()).limit(limit + 1)).all()
    records = [JobRecord.from_row(row) for row in rows[:limit]]
    return records, records[-1].public_id if len(rows) > limit else None


def result_chunks(engine: Engine, job_id: int) -> list[int]:
    """The done chunks of a job, in input order."""
    with engine.connect() as conn:
        return list(
            conn.execute(select(job_results.c.seq).where(job_results.c.job_id == job_id).order_by(job_results.c.seq))
            .scalars()
            .all()
        )


def result_data(engine: Engine, job_id: int, seq: int) -> bytes | None:
    with engine.connect() as conn:
        data: bytes | None = conn.execute(
            select(job_results.c.data).where(job_results.c.job_id == job_id, job_results.c.seq == seq)
        ).scalar()
    return data


def holding(engine: Engine, account_id: int) -> list[JobRecord]:
    """The account's jobs that hold credits now, oldest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(jobs).where(jobs.c.account_id == account_id, jobs.c.reserved > 0).order_by(jobs.c.id)
        ).all()
    return [JobRecord.from_row(row) for row in rows]
