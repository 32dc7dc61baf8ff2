"""How long the console's 90-day charts take over 10 million ledger rows, against counting one account's rows.

Why: the account holder's chart (``billing.rollup.account_usage``) and the
operator's (``traffic``) must render in 200 ms or less however long the ledger
grows; they read the hourly rollup and the ledger's unfolded tail, never its
history. This loads ``--rows`` ledger rows (default 10 million) over
``--days`` days for ``--accounts`` accounts (skewed: the first account, the one
charted, has about a tenth of them), folds them with ``roll_up``, adds an
unfolded tail of ``--tail`` charges in the last minutes, then times, median of
``--repeat`` runs each:

- the chart: ``account_usage`` of the first account and ``traffic``, 90 days by
  day (target <= 200 ms for both together), and the 24-hour chart by hour;
- the reference: ``SELECT count(*) FROM ledger WHERE account_id = ?`` for the same
  account over the same rows (an index-only count of its million rows), and the
  ratio chart / reference.

It also checks that the chart's credits equal the sum over the ledger's rows.
Run by hand, never by the suite::

    python bench/console_chart.py [--database sqlite postgresql] [--rows 10000000]
                                  [--accounts 1000] [--days 120] [--tail 2000] [--repeat 7]

Loading: the ledger's ``(account_id, id)`` index is dropped for the load and
built again after it; rows go in by ``executemany`` on SQLite and ``COPY`` on
PostgreSQL (``tests/pg.py``'s throwaway cluster, its ``fsync=off`` too: the
bench times reads), in chunks of half a million, with no ``request_id`` (its
unique index is not what the charts read).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import Engine, func, select, text

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # the test harness: a throwaway PostgreSQL cluster

from numlookup.billing.rollup import account_usage, last_activity, roll_up, top_accounts, traffic  # noqa: E402
from numlookup.store import make_engine, upgrade  # noqa: E402
from numlookup.store.tables import accounts, ledger  # noqa: E402

if TYPE_CHECKING:
    from tests.pg import PostgresCluster

CHUNK = 500_000
TARGET_MS = 200.0
CHARTED = 1  # the account charted: the heaviest
COLUMNS = (
    "account_id",
    "kind",
    "amount",
    "numbers",
    "balance_after",
    "created_at",
    "offline",
    "cached",
    "live",
    "invalid",
)


def make_accounts(engine: Engine, count: int) -> None:
    now = datetime.now(UTC)
    rows = [
        {
            "id": i,
            "name": f"bench-{i}",
            "api_username": f"bench{i}",
            "secret_salt": bytes(32),
            "secret_hash": bytes(32),
            "enabled": True,
            "balance": 0,
            "reserved": 0,
            "created_at": now,
            "updated_at": now,
        }
        for i in range(1, count + 1)
    ]
    with engine.begin() as conn:
        conn.execute(accounts.insert(), rows)


def chunks(rows: int, n_accounts: int, days: int, now: datetime) -> Any:
    """Columns of ``CHUNK`` rows at a time, in id order and time order, numpy-made."""
    rng = np.random.default_rng(7)
    start_us = int((now - timedelta(days=days)).timestamp() * 1_000_000)
    span_us = days * 86_400 * 1_000_000
    for first in range(0, rows, CHUNK):
        n = min(CHUNK, rows - first)
        # Row i at start + span * i / rows, plus jitter within its slot: ascending with the ids.
        slot = (np.arange(first, first + n, dtype=np.int64) * (span_us // rows)).astype(np.int64)
        at = start_us + slot + rng.integers(0, max(1, span_us // rows), n)
        account = (np.floor(n_accounts * rng.random(n) ** 3) + 1).astype(np.int64)  # account 1: ~1/10 of rows
        kind = np.where(rng.random(n) < 0.99, np.where(rng.random(n) < 0.97, "lookup", "job"), "credit")
        charge = kind != "credit"
        offline = rng.integers(0, 8, n) * charge
        cached = rng.integers(0, 2, n) * charge
        live = rng.integers(0, 3, n) * charge
        invalid = rng.integers(0, 2, n) * charge
        numbers = offline + cached + live
        amount = np.where(charge, -(offline * 10_000 + cached * 2_000 + live * 50_000), 1_000_000)
        stamps = np.char.replace(np.datetime_as_string(at.astype("datetime64[us]"), unit="us"), "T", " ")
        yield account, kind, amount, numbers, stamps, offline, cached, live, invalid, charge


def load(engine: Engine, rows: int, n_accounts: int, days: int, now: datetime) -> float:
    started = time.perf_counter()
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_ledger_account_id_id"))
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("BEGIN")
            sql = f"INSERT INTO ledger ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
            for account, kind, amount, numbers, stamps, offline, cached, live, invalid, charge in chunks(
                rows, n_accounts, days, now
            ):
                classes = [np.where(charge, c, -1).tolist() for c in (offline, cached, live, invalid)]
                cursor.executemany(
                    sql,
                    [
                        (a, k, m, u, 0, s, *(None if v < 0 else v for v in cs))
                        for a, k, m, u, s, *cs in zip(
                            account.tolist(),
                            kind.tolist(),
                            amount.tolist(),
                            numbers.tolist(),
                            stamps.tolist(),
                            *classes,
                            strict=True,
                        )
                    ],
                )
            cursor.execute("COMMIT")
        finally:
            raw.close()
    else:
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            for account, kind, amount, numbers, stamps, offline, cached, live, invalid, charge in chunks(
                rows, n_accounts, days, now
            ):
                buf = io.StringIO()
                for a, k, m, u, s, o, c, li, inv, ch in zip(
                    account.tolist(),
                    kind.tolist(),
                    amount.tolist(),
                    numbers.tolist(),
                    stamps.tolist(),
                    offline.tolist(),
                    cached.tolist(),
                    live.tolist(),
                    invalid.tolist(),
                    charge.tolist(),
                    strict=True,
                ):
                    counted = f"{o}\t{c}\t{li}\t{inv}" if ch else "\\N\t\\N\t\\N\t\\N"
                    buf.write(f"{a}\t{k}\t{m}\t{u}\t0\t{s}+00\t{counted}\n")
                with cursor.copy(f"COPY ledger ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                    copy.write(buf.getvalue())
            raw.commit()
        finally:
            raw.close()
    with engine.begin() as conn:
        conn.execute(text("CREATE INDEX ix_ledger_account_id_id ON ledger (account_id, id)"))
        conn.execute(text("ANALYZE"))
    return time.perf_counter() - started


def add_tail(engine: Engine, count: int, n_accounts: int, now: datetime) -> None:
    """Charges of the last minutes that no fold has seen: what a chart finds between two folds."""
    rng = np.random.default_rng(11)
    rows = [
        {
            "account_id": int(a),
            "kind": "lookup",
            "amount": -10_000,
            "numbers": 1,
            "balance_after": 0,
            "created_at": now - timedelta(seconds=int(s)),
            "offline": 1,
            "cached": 0,
            "live": 0,
            "invalid": 0,
        }
        for a, s in zip(
            np.floor(n_accounts * rng.random(count) ** 3) + 1,
            sorted(rng.integers(0, 300, count), reverse=True),
            strict=True,
        )
    ]
    with engine.begin() as conn:
        conn.execute(ledger.insert(), rows)


def median_ms(repeat: int, call: Callable[[], object]) -> float:
    call()  # warm: the first run reads the pages from disk
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def run(url: str, label: str, options: argparse.Namespace) -> None:
    engine = make_engine(url)
    upgrade(engine)
    now = datetime.now(UTC).replace(microsecond=0)
    make_accounts(engine, options.accounts)
    loaded = load(engine, options.rows, options.accounts, options.days, now - timedelta(minutes=10))
    print(f"{label}: {options.rows:,} ledger rows loaded in {loaded:.1f} s ({options.rows / loaded:,.0f} rows/s)")
    started = time.perf_counter()
    folded = roll_up(engine, batch=100_000)
    folding = time.perf_counter() - started
    print(f"  roll_up: {folded:,} charges folded in {folding:.1f} s ({folded / folding:,.0f}/s)")
    add_tail(engine, options.tail, options.accounts, now)
    until = datetime.now(UTC)
    since = until - timedelta(days=90)

    def chart_90d() -> None:
        with engine.connect() as conn:
            account_usage(conn, CHARTED, since, until, "day")
            traffic(conn, since, until, "day")

    def chart_24h() -> None:
        with engine.connect() as conn:
            account_usage(conn, CHARTED, until - timedelta(hours=24), until, "hour")
            traffic(conn, until - timedelta(hours=24), until, "hour")

    def top_30d() -> None:
        with engine.connect() as conn:
            top_accounts(conn, until - timedelta(days=30), until)

    def activity() -> None:
        with engine.connect() as conn:
            last_activity(conn)

    def reference() -> None:
        with engine.connect() as conn:
            conn.execute(select(func.count()).select_from(ledger).where(ledger.c.account_id == CHARTED)).scalar_one()

    with engine.connect() as conn:
        charted_rows = conn.execute(
            select(func.count()).select_from(ledger).where(ledger.c.account_id == CHARTED)
        ).scalar_one()
        buckets = account_usage(conn, CHARTED, since, until, "day")
        low = buckets[0].start
        spent = conn.execute(
            select(func.coalesce(-func.sum(ledger.c.amount), 0)).where(
                ledger.c.account_id == CHARTED, ledger.c.kind.in_(("lookup", "job")), ledger.c.created_at >= low
            )
        ).scalar_one()
    charted = sum(b.credits for b in buckets)
    print(f"  check: the chart's credits {charted:,} {'==' if charted == spent else '!='} the ledger's sum {spent:,}")
    ours = median_ms(options.repeat, chart_90d)
    ref = median_ms(options.repeat, reference)
    print(f"  chart 90 days by day (account_usage + traffic): {ours:.1f} ms (target <= {TARGET_MS:.0f} ms)")
    print(f"  chart 24 hours by hour (account_usage + traffic): {median_ms(options.repeat, chart_24h):.1f} ms")
    print(f"  top_accounts, 30 days: {median_ms(options.repeat, top_30d):.1f} ms")
    print(f"  last_activity of {options.accounts:,} accounts: {median_ms(options.repeat, activity):.1f} ms")
    print(f"  reference: count(*) of account {CHARTED}'s {charted_rows:,} ledger rows: {ref:.1f} ms")
    print(f"    ratio chart/reference: {ours / ref:.3f}")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite"])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--tail", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=7)
    options = parser.parse_args()
    for database in options.database:
        if database == "sqlite":
            with tempfile.TemporaryDirectory(prefix="numlookup-chart-") as folder:
                run(f"sqlite:///{folder}/numlookup.db", "sqlite", options)
        else:
            cluster = start_postgres()
            try:
                run(cluster.create_database(), "postgresql", options)
            finally:
                cluster.stop()


def start_postgres() -> PostgresCluster:
    from tests.pg import PostgresCluster  # here: SQLite-only runs need no psycopg

    return PostgresCluster().start()


if __name__ == "__main__":
    main()
