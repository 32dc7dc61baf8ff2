"""Usage over time, for the console's charts: the ledger's charges folded per hour, and read back in buckets.

Why a rollup: a chart of 90 days read from the ledger scans every charge of
those days (millions of rows); read from ``usage_rollup`` it reads at most one
row per hour (2,160), and ``traffic_rollup`` (the same across accounts) one row
per hour for the operator's chart; ``usage_daily`` (per account and day) lets
the top accounts of a month read 30 rows per account, hours only at its edges.
``roll_up`` folds the ledger rows past the watermark; the readers add the rows
not folded yet (the tail past the watermark, found by the ledger's primary key
or ``(account_id, id)`` index) in the same statement, so a chart is exact to
the last committed charge and never reads the ledger's history.

Many nodes run ``roll_up``: the watermark row is locked (``FOR UPDATE``; on
SQLite the write lock) for the fold, so two folds take turns and no row is
folded twice. PostgreSQL hands out ids at insert, not at commit: id 7's
transaction can commit after id 8 was folded. So an id missing below the new
watermark is remembered in ``usage_rollup_gaps``; when its row appears it is
folded (and the readers count it meanwhile), and once no charge transaction can
still be open (``GAP_TTL``) the id is forgotten (a transaction that rolled back
used it). Each fold is one short transaction of at most ``batch`` rows, so on
SQLite (one writer at a time) charges wait for it no longer than for a big batch
of their own.

Credits and adjustments are not usage: only ``lookup`` and ``job`` rows are
folded. A charge written before the answer classes were recorded (its class
columns NULL) counts its numbers as offline, the class prices call "everything else".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import anyio.to_thread
from sqlalchemy import (
    Connection,
    Engine,
    Integer,
    Select,
    and_,
    bindparam,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    type_coerce,
    union_all,
    update,
)

from numlookup.billing.reservations import JOB_KIND
from numlookup.store.engine import write_transaction
from numlookup.store.tables import (
    UTCDateTime,
    accounts,
    ledger,
    traffic_rollup,
    usage_daily,
    usage_rollup,
    usage_rollup_gaps,
    usage_rollup_state,
)
from numlookup.store.upsert import upsert

log = logging.getLogger(__name__)

Bucket = Literal["hour", "day"]
CHARGE_KINDS = ("lookup", JOB_KIND)  # the ledger kinds that are usage
FOLD_BATCH = 2000  # ledger rows per fold transaction
ROLLUP_SECONDS = 5.0  # how often each worker folds
# How long an id missing below the watermark is waited for. A charge's transaction
# lasts milliseconds (a batch of group commit, a job chunk's settlement); one open
# for ten minutes is gone, and its id will never appear.
GAP_TTL = timedelta(minutes=10)
_STATE_ID = 1
_COUNTERS = ("requests", "offline", "cached", "live", "invalid", "credits")
_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class UsageBucket:
    """One bucket of a chart: the charges whose row was written in ``[start, start + an hour or a day)``."""

    start: datetime  # UTC start of the hour or day
    requests: int  # lookup ledger rows (sync requests and job chunks)
    offline: int
    cached: int
    live: int
    invalid: int
    credits: int  # micro-credits spent, positive

    @property
    def numbers(self) -> int:
        """The charged numbers (every answer class but invalid, which is free)."""
        return self.offline + self.cached + self.live


@dataclass(frozen=True, slots=True)
class AccountTotals:
    account_id: int
    name: str
    requests: int
    numbers: int  # charged numbers: offline + cached + live
    credits: int
    last_activity: datetime | None  # the account's newest ledger row, of any kind


# ------------------------------------------------------------------------------------------------- folding


def roll_up(engine: Engine, *, batch: int = FOLD_BATCH, now: datetime | None = None) -> int:
    """Fold every ledger row past the watermark (and every gap's row that appeared); the charges folded.

    One short transaction per ``batch`` rows, until the tail is empty.
    """
    if batch < 1:
        raise ValueError("batch must be at least 1")
    if not _pending(engine):
        return 0  # nothing to fold: no write transaction, so an idle fold never holds SQLite's writer lock
    folded = 0
    while True:
        charges, more = _fold(engine, batch, now or datetime.now(UTC))
        folded += charges
        if not more:
            return folded


def _pending(engine: Engine) -> bool:
    """Whether a ledger row is past the watermark, or an id is waited for (a read: no lock)."""
    with engine.connect() as conn:
        watermark = _hint(conn)  # a number, not a subquery: the planner walks the primary key from it
        return (
            conn.execute(select(ledger.c.id).where(ledger.c.id > watermark).limit(1)).first() is not None
            or conn.execute(select(usage_rollup_gaps.c.ledger_id).limit(1)).first() is not None
        )


async def follow(engine: Engine, interval: float = ROLLUP_SECONDS) -> None:
    """Fold every ``interval`` seconds while the worker runs (a lifespan task of every worker: they take turns)."""
    while True:
        await asyncio.sleep(interval)
        try:
            folded = await anyio.to_thread.run_sync(roll_up, engine)
        except Exception as exc:  # the database is away, or busy: the readers count the tail meanwhile
            log.warning("usage roll-up did not run: %s", exc)
            continue
        if folded:
            log.debug("usage roll-up folded %d charges", folded)


def _fold(engine: Engine, batch: int, now: datetime) -> tuple[int, bool]:
    """One fold transaction: (charges folded, whether rows past the watermark are left).

    The batch is first measured in one statement (its rows, its largest id,
    its charges): where its ids run on from the watermark without a hole (on
    SQLite always, one writer numbering on), no id is read into Python, which
    for 2,000 rows a fold was a third of its CPU. Otherwise the ids are read
    (with their kinds) and the holes they leave are the new gaps; the batch is
    then what that read found, not what the measure did: on PostgreSQL a row
    can commit between the two statements (one under the first's snapshot
    whose higher neighbour had committed), and counted from the measure it was
    neither folded nor a gap. The sums take exactly the ids measured or read
    (those up to the new watermark, less the gaps they left, plus the gaps'
    rows that appeared): a row that commits after the read is a gap of this
    fold, and folded by a later one. With no row past the watermark the fold
    only looks at its gaps, so a gap is never recorded above the watermark.
    """
    dialect = engine.dialect.name
    with write_transaction(engine) as conn:
        # The row exists from the first fold on; creating it may race another node's: ON CONFLICT settles it.
        conn.execute(
            upsert(dialect, usage_rollup_state)
            .values(id=_STATE_ID, last_id=0, updated_at=now)
            .on_conflict_do_nothing(index_elements=["id"])
        )
        last_id = conn.execute(
            select(usage_rollup_state.c.last_id).where(usage_rollup_state.c.id == _STATE_ID).with_for_update()
        ).scalar_one()
        gaps = {int(r.ledger_id): r.seen_at for r in conn.execute(select(usage_rollup_gaps))}
        rows, top, charges = (int(v or 0) for v in conn.execute(_BATCH, {"last_id": last_id, "batch": batch}).one())
        # Ids skipped below the new watermark: their transactions may still commit.
        new_gaps: list[int] = []
        if rows and top - last_id != rows:
            # A hole: the batch read again, this time its ids. On PostgreSQL this statement
            # sees what committed since the one above, so the batch is what it reads.
            read = conn.execute(_IDS, {"last_id": last_id, "batch": batch}).all()
            rows, charges, expected = len(read), 0, last_id + 1
            for ledger_id, kind in read:
                if ledger_id != expected:
                    new_gaps.extend(range(expected, ledger_id))
                expected = ledger_id + 1
                charges += kind in CHARGE_KINDS
            top = expected - 1
        appeared = (
            conn.execute(select(ledger.c.id, ledger.c.kind).where(ledger.c.id.in_(list(gaps)))).all() if gaps else []
        )
        found = [row.id for row in appeared]
        expired = [i for i, seen in gaps.items() if i not in set(found) and seen < now - GAP_TTL]
        charges += sum(1 for row in appeared if row.kind in CHARGE_KINDS)
        if charges:
            taken: list[Any] = []
            if rows:
                taken.append(
                    and_(ledger.c.id > last_id, ledger.c.id <= top, ledger.c.id.not_in(new_gaps))
                    if new_gaps
                    else and_(ledger.c.id > last_id, ledger.c.id <= top)
                )
            if found:
                taken.append(ledger.c.id.in_(found))
            _add(conn, dialect, or_(*taken))
        if found or expired:
            conn.execute(delete(usage_rollup_gaps).where(usage_rollup_gaps.c.ledger_id.in_([*found, *expired])))
        if new_gaps:
            conn.execute(usage_rollup_gaps.insert(), [{"ledger_id": i, "seen_at": now} for i in new_gaps])
        if rows:
            conn.execute(
                update(usage_rollup_state)
                .where(usage_rollup_state.c.id == _STATE_ID)
                .values(last_id=top, updated_at=now)
            )
    return charges, rows == batch


# The next ``batch`` ledger rows past the watermark, in id order: their ids and kinds, and measured in one row.
_NEXT = (
    select(ledger.c.id, ledger.c.kind)
    .where(ledger.c.id > bindparam("last_id"))
    .order_by(ledger.c.id)
    .limit(bindparam("batch"))
    .subquery()
)
_IDS = select(_NEXT.c.id, _NEXT.c.kind).order_by(_NEXT.c.id)
_BATCH = select(
    func.count(),
    func.max(_NEXT.c.id),
    func.sum(case((_NEXT.c.kind.in_(CHARGE_KINDS), 1), else_=0)),
)


def _charge_sums() -> list[Any]:
    """A charge's counters summed, in ``_COUNTERS`` order; NULL classes (older rows) count as offline."""
    return [
        func.count().label("requests"),
        func.sum(func.coalesce(ledger.c.offline, ledger.c.numbers)).label("offline"),
        func.sum(func.coalesce(ledger.c.cached, 0)).label("cached"),
        func.sum(func.coalesce(ledger.c.live, 0)).label("live"),
        func.sum(func.coalesce(ledger.c.invalid, 0)).label("invalid"),
        func.sum(-ledger.c.amount).label("credits"),
    ]


def _add(conn: Connection, dialect: str, taken: Any) -> None:
    """Add the charges among the ledger rows ``taken`` selects to the rollups.

    The ledger rows are read once, summed by the database per account and
    hour; the days and the hours across accounts are those sums added up here
    (integers: exact), not two more passes of the database over the same
    ledger rows, which were half of a fold's work.
    """
    hour = _truncate(dialect, ledger.c.created_at, "hour")
    query = (
        select(ledger.c.account_id, hour.label("hour"), *_charge_sums())
        .where(ledger.c.kind.in_(CHARGE_KINDS), taken)
        .group_by(ledger.c.account_id, hour)
    )
    hours: list[dict[str, Any]] = []
    days: dict[tuple[int, datetime], list[int]] = {}
    traffic_hours: dict[datetime, list[int]] = {}
    for row in conn.execute(query):
        sums = [int(v) for v in row[2:]]
        hours.append({"account_id": row.account_id, "hour": row.hour, **dict(zip(_COUNTERS, sums, strict=True))})
        for counted in (
            days.setdefault((row.account_id, _floor(row.hour, "day")), [0] * len(_COUNTERS)),
            traffic_hours.setdefault(row.hour, [0] * len(_COUNTERS)),
        ):
            counted[:] = [a + b for a, b in zip(counted, sums, strict=True)]
    daily = [{"account_id": a, "day": d, **dict(zip(_COUNTERS, v, strict=True))} for (a, d), v in days.items()]
    traffic = [{"hour": h, **dict(zip(_COUNTERS, v, strict=True))} for h, v in traffic_hours.items()]
    for table, keys, values in (
        (usage_rollup, ["account_id", "hour"], hours),
        (usage_daily, ["account_id", "day"], daily),
        (traffic_rollup, ["hour"], traffic),
    ):
        if not values:
            continue
        insert = upsert(dialect, table)
        conn.execute(
            insert.on_conflict_do_update(
                index_elements=keys, set_={name: table.c[name] + insert.excluded[name] for name in _COUNTERS}
            ),
            values,
        )


def _truncate(dialect: str, column: Any, bucket: Bucket) -> Any:
    """The UTC hour or day a moment falls in, as SQL, in the form the column stores (so it compares and groups).

    SQLite stores ``UTCDateTime`` as text, ``YYYY-MM-DD HH:MM:SS.ffffff`` in UTC;
    PostgreSQL as ``timestamptz``, truncated in UTC whatever the session's zone.
    """
    if dialect == "sqlite":
        if bucket == "day":
            return type_coerce(func.substr(column, 1, 10).op("||")(" 00:00:00.000000"), UTCDateTime)
        return type_coerce(func.substr(column, 1, 13).op("||")(":00:00.000000"), UTCDateTime)
    if dialect == "postgresql":
        utc = func.timezone("UTC", column)
        return type_coerce(func.timezone("UTC", func.date_trunc(bucket, utc)), UTCDateTime)
    raise ValueError(f"the usage rollup has no {dialect} form")


# ------------------------------------------------------------------------------------------------- reading


def _floor(moment: datetime, bucket: Bucket) -> datetime:
    moment = moment.astimezone(UTC)
    if bucket == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(minute=0, second=0, microsecond=0)


def _starts(since: datetime, until: datetime, bucket: Bucket) -> list[datetime]:
    """Every bucket's start from the one holding ``since`` to the last one starting before ``until``."""
    if bucket not in ("hour", "day"):
        raise ValueError(f"bucket must be 'hour' or 'day', not {bucket!r}")
    if since.tzinfo is None or until.tzinfo is None:
        raise ValueError("since and until must be aware datetimes")
    if since >= until:
        return []
    step = _DAY if bucket == "day" else _HOUR
    start, starts = _floor(since, bucket), []
    while start < until:
        starts.append(start)
        start += step
    return starts


_WATERMARK = select(func.coalesce(func.max(usage_rollup_state.c.last_id), 0))


def _unfolded(hint: int = 0) -> tuple[Any, Any]:
    """The two conditions of the ledger rows not folded yet: past the watermark; a gap's row that appeared.

    Two, each a range or a list of the primary key, for two selects rather than
    one ``OR``, which SQLite plans as a walk over all of an account's rows. The
    watermark is read in the statement itself (its snapshot is the rollup's);
    ``hint``, a watermark read just before, changes nothing (the watermark only
    rises) but gives PostgreSQL's planner a number: for ``id > (subquery)`` it
    guesses a third of the ledger, and over 10 million rows scanned it in parallel.
    """
    return (
        and_(ledger.c.id > hint, ledger.c.id > _WATERMARK.scalar_subquery()),
        ledger.c.id.in_(select(usage_rollup_gaps.c.ledger_id)),
    )


def _hint(conn: Connection) -> int:
    return int(conn.execute(_WATERMARK).scalar_one())


def _tail(hint: int, where: Sequence[Any]) -> list[Select[Any]]:
    """The unfolded charges as rollup-shaped rows (one per charge), NULL classes counted offline."""
    columns = (
        ledger.c.created_at.label("start"),
        literal(1, Integer).label("requests"),
        func.coalesce(ledger.c.offline, ledger.c.numbers).label("offline"),
        func.coalesce(ledger.c.cached, 0).label("cached"),
        func.coalesce(ledger.c.live, 0).label("live"),
        func.coalesce(ledger.c.invalid, 0).label("invalid"),
        (-ledger.c.amount).label("credits"),
    )
    return [select(*columns).where(ledger.c.kind.in_(CHARGE_KINDS), part, *where) for part in _unfolded(hint)]


def _buckets(
    conn: Connection, parts: Sequence[Select[Any]], starts: list[datetime], bucket: Bucket
) -> list[UsageBucket]:
    """The parts' rows summed per bucket by the database (one statement, one snapshot), every bucket present.

    One statement: the rollup and the tail are read from one snapshot, so a fold
    committing in between is counted once.
    """
    both = union_all(*parts).subquery()
    start = _truncate(conn.dialect.name, both.c.start, bucket)
    query = select(start.label("start"), *(func.sum(both.c[n]).label(n) for n in _COUNTERS)).group_by(start)
    sums = {start: [0] * 6 for start in starts}
    for row in conn.execute(query):
        found = sums.get(row.start.astimezone(UTC))
        if found is not None:  # None: the tail's rows past the last bucket
            found[:] = [int(v) for v in row[1:]]
    return [UsageBucket(start, *s) for start, s in sums.items()]


def _range(starts: list[datetime], bucket: Bucket) -> tuple[datetime, datetime]:
    return starts[0], starts[-1] + (_DAY if bucket == "day" else _HOUR)


def account_usage(
    conn: Connection, account_id: int, since: datetime, until: datetime, bucket: Bucket
) -> list[UsageBucket]:
    """The account's charges per bucket, every bucket from the one holding ``since`` to ``until`` (zeros too).

    A bucket is whole: its first and last hours count in full, since the rollup
    knows hours, not moments.
    """
    starts = _starts(since, until, bucket)
    if not starts:
        return []
    low, high = _range(starts, bucket)
    folded = select(usage_rollup.c.hour.label("start"), *(usage_rollup.c[n] for n in _COUNTERS)).where(
        usage_rollup.c.account_id == account_id, usage_rollup.c.hour >= low, usage_rollup.c.hour < high
    )
    tail = _tail(
        _hint(conn), [ledger.c.account_id == account_id, ledger.c.created_at >= low, ledger.c.created_at < high]
    )
    return _buckets(conn, [folded, *tail], starts, bucket)


def traffic(conn: Connection, since: datetime, until: datetime, bucket: Bucket) -> list[UsageBucket]:
    """Every account's charges per bucket, as ``account_usage`` buckets them."""
    starts = _starts(since, until, bucket)
    if not starts:
        return []
    low, high = _range(starts, bucket)
    folded = select(traffic_rollup.c.hour.label("start"), *(traffic_rollup.c[n] for n in _COUNTERS)).where(
        traffic_rollup.c.hour >= low, traffic_rollup.c.hour < high
    )
    tail = _tail(_hint(conn), [ledger.c.created_at >= low, ledger.c.created_at < high])
    return _buckets(conn, [folded, *tail], starts, bucket)


def top_accounts(conn: Connection, since: datetime, until: datetime, limit: int = 10) -> list[AccountTotals]:
    """The accounts that spent the most credits in the hours from the one holding ``since`` to ``until``.

    Ties go to more requests, then the lower account id; accounts with no charge
    in the range are left out.
    """
    if limit < 1:
        raise ValueError("limit must be at least 1")
    starts = _starts(since, until, "hour")
    if not starts:
        return []
    low, high = _range(starts, "hour")
    # Whole days from the daily rollup, the hours before the first and after the last from the hourly one.
    first_day = _floor(low + _DAY - _HOUR, "day")  # the first midnight at or after low
    last_day = _floor(high, "day")  # the last midnight at or before high
    folded: list[Select[Any]] = []
    if first_day < last_day:
        folded.append(_totals(usage_daily, usage_daily.c.day, first_day, last_day))
        edges = [(low, first_day), (last_day, high)]
    else:
        edges = [(low, high)]
    folded.extend(_totals(usage_rollup, usage_rollup.c.hour, a, b) for a, b in edges if a < b)
    tail = [
        select(
            ledger.c.account_id,
            literal(1, Integer).label("requests"),
            func.coalesce(ledger.c.offline + ledger.c.cached + ledger.c.live, ledger.c.numbers).label("numbers"),
            (-ledger.c.amount).label("credits"),
        ).where(ledger.c.kind.in_(CHARGE_KINDS), part, ledger.c.created_at >= low, ledger.c.created_at < high)
        for part in _unfolded(_hint(conn))
    ]
    both = union_all(*folded, *tail).subquery()
    sums = (
        select(
            both.c.account_id,
            func.sum(both.c.requests).label("requests"),
            func.sum(both.c.numbers).label("numbers"),
            func.sum(both.c.credits).label("credits"),
        )
        .group_by(both.c.account_id)
        .subquery()
    )
    query = (
        select(accounts.c.id, accounts.c.name, sums.c.requests, sums.c.numbers, sums.c.credits)
        .join(sums, sums.c.account_id == accounts.c.id)
        .order_by(sums.c.credits.desc(), sums.c.requests.desc(), accounts.c.id)
        .limit(limit)
    )
    found = list(conn.execute(query))
    newest = _newest(conn, [r.id for r in found])
    return [
        AccountTotals(r.id, r.name, int(r.requests), int(r.numbers), int(r.credits), newest.get(r.id)) for r in found
    ]


def _totals(table: Any, start: Any, low: datetime, high: datetime) -> Select[Any]:
    """An account's requests, charged numbers and credits from a rollup's rows in ``[low, high)``."""
    return select(
        table.c.account_id,
        table.c.requests,
        (table.c.offline + table.c.cached + table.c.live).label("numbers"),
        table.c.credits,
    ).where(start >= low, start < high)


_NEWEST = (
    select(ledger.c.created_at)
    .where(ledger.c.account_id == accounts.c.id)
    .order_by(ledger.c.id.desc())
    .limit(1)
    .correlate(accounts)
    .scalar_subquery()
)


def _newest(conn: Connection, account_ids: Sequence[int] | None) -> dict[int, datetime]:
    """Each account's newest ledger row's time: one seek of ``(account_id, id)`` per account, no scan."""
    query = select(accounts.c.id, _NEWEST.label("newest"))
    if account_ids is not None:
        if not account_ids:
            return {}
        query = query.where(accounts.c.id.in_(bindparam("ids", expanding=True)))
    rows = conn.execute(query, {"ids": list(account_ids)} if account_ids is not None else {})
    return {int(row.id): row.newest for row in rows if row.newest is not None}


def last_activity(conn: Connection) -> dict[int, datetime]:
    """Account id → its newest ledger row's time (any kind); accounts without a row are left out."""
    return _newest(conn, None)
