"""The usage rollup's fold, CPU per folded charge, against one ``sqlite3`` pass summing the same rows.

Why: every charge the server commits is folded once (``billing.rollup.roll_up``,
every ``ROLLUP_SECONDS`` on a worker thread), so the fold's cost is a cost per
request. This grows a SQLite ledger with group commits of 34 charges (random
request ids made as the server makes them) and, each round, adds five seconds of the
server's charges (6,500) and times one ``roll_up`` (CPU of this thread); the
reference is the floor of any fold: the same new rows summed per account and
hour by one ``GROUP BY`` through ``sqlite3`` itself, nothing written. The
ratio is reference / fold.

Run by hand, never by the test suite; another checkout's code with
``PYTHONPATH=/path/to/checkout``::

    python bench/rollup_fold.py [--rounds 8] [--rows 6500]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

import numlookup
from numlookup.accounts import create_account, get_account
from numlookup.api.request_id import new_request_id
from numlookup.billing.ledger import Counts, Debit, debit_batch
from numlookup.billing.rollup import roll_up
from numlookup.store import upgrade
from numlookup.store.engine import make_engine, write_transaction

_REFERENCE = (
    "SELECT account_id, substr(created_at, 1, 13), count(*), sum(coalesce(offline, numbers)),"
    " sum(coalesce(cached, 0)), sum(coalesce(live, 0)), sum(coalesce(invalid, 0)), sum(-amount)"
    " FROM ledger WHERE id > ? AND kind IN ('lookup', 'job') GROUP BY 1, 2"
)


def main() -> None:
    parser = argparse.ArgumentParser(description="The rollup's fold against one sqlite3 GROUP BY of the same rows.")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--rows", type=int, default=6_500, help="charges added before each fold")
    args = parser.parse_args()
    if args.rows < 1 or args.rounds < 1:
        parser.error("--rows and --rounds must be at least 1")
    print(f"numlookup from {Path(numlookup.__file__).parent}")
    with tempfile.TemporaryDirectory(prefix="numlookup-bench-") as folder:
        path = Path(folder) / "numlookup.db"
        engine = make_engine(f"sqlite:///{path}", sqlite_synchronous="OFF")
        upgrade(engine)
        account_id = get_account(engine, create_account(engine, "bench", credits=10**15).name).id
        counts = Counts(offline=8, cached=1, live=1, invalid=1)

        def grow(rows: int) -> int:
            for at in range(0, rows, 34):
                with write_transaction(engine) as conn:
                    debits = [
                        Debit(account_id, new_request_id(), 100_000, 10, counts) for _ in range(min(34, rows - at))
                    ]
                    debit_batch(conn, debits)
            with engine.connect() as conn:
                return int(conn.exec_driver_sql("SELECT max(id) FROM ledger").scalar_one())

        def reference(before: int) -> float:
            started = time.thread_time()
            raw.execute(_REFERENCE, (before,)).fetchall()
            return time.thread_time() - started

        raw = sqlite3.connect(path)
        grow(30_000)
        roll_up(engine)
        folds: list[float] = []
        floors: list[float] = []
        for round_ in range(args.rounds):
            before = grow(0)
            grow(args.rows)
            # The reference goes first in every other round: the second reads pages the first has warmed.
            floor = reference(before) if round_ % 2 == 0 else None
            started = time.thread_time()
            folded = roll_up(engine)
            folds.append((time.thread_time() - started) / folded * 1e6)
            floors.append((reference(before) if floor is None else floor) / folded * 1e6)
        raw.close()
        engine.dispose()
    print(f"the fold of {args.rows} charges, {args.rounds} rounds (CPU of this thread per folded charge):")
    print(f"  roll_up          {statistics.median(folds):6.2f} µs  ({min(folds):.2f}–{max(folds):.2f})")
    print(f"  sqlite3 GROUP BY {statistics.median(floors):6.2f} µs  ({min(floors):.2f}–{max(floors):.2f})")
    ratios = [floor / fold for floor, fold in zip(floors, folds, strict=True)]
    print(f"  ratio reference / fold {statistics.median(ratios):.3f} ({min(ratios):.3f}–{max(ratios):.3f})")


if __name__ == "__main__":
    main()
