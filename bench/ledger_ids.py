"""A group commit of charges into a grown ledger, with the server's request ids against random (version 4) ones.

Why: the ledger's unique index on ``request_id`` is a B-tree, so where a
batch's keys fall in it decides how many pages its commit writes. The server
commits the charges of the requests in flight together (``billing.charger``);
this grows two SQLite ledgers alike, one keyed by ``uuid.uuid4()`` and one by
the server's ids (``api.request_id.new_request_id``, version 7: time first),
then commits batches of ``--batch`` charges into each in turn, as the server's
charges thread does (``driver_transaction`` + ``debit_batch``, SQLite's
``synchronous`` at the default ``FULL``), and prints the wall and CPU time per
commit and each file's size. The reference is the version 4 ledger, in the
same invocation; the ratio is reference / ours, above 1 when ours is cheaper.

Run by hand, never by the test suite; another checkout's code with
``PYTHONPATH=/path/to/checkout``::

    python bench/ledger_ids.py [--rows 200000] [--batch 34] [--commits 300]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import numlookup
from numlookup.accounts import create_account, get_account
from numlookup.api.request_id import new_request_id
from numlookup.billing.ledger import Counts, Debit, debit_batch
from numlookup.store import upgrade
from numlookup.store.engine import driver_transaction, make_engine

COUNTS = Counts(offline=8, cached=1, live=1, invalid=1)


class _Ledger:
    """One database whose ledger is keyed by ``ids``: grown fast, then committed into as the server does."""

    def __init__(self, folder: Path, name: str, ids: Callable[[], str]) -> None:
        self.path = folder / f"{name}.db"
        self.ids = ids
        grower = make_engine(f"sqlite:///{self.path}", sqlite_synchronous="OFF")
        upgrade(grower)
        self.account_id = get_account(grower, create_account(grower, name, credits=10**15).name).id
        self.engine = grower

    def commit(self, batch: int) -> None:
        debits = [Debit(self.account_id, self.ids(), 100_000, 10, COUNTS) for _ in range(batch)]
        with driver_transaction(self.engine) as (conn, cursor):
            debit_batch(conn, debits, cursor)

    def durable(self) -> None:
        """From here on, each commit is fsynced as the server's are."""
        self.engine.dispose()
        self.engine = make_engine(f"sqlite:///{self.path}")

    def timed(self, batch: int) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.thread_time()
        self.commit(batch)
        return (time.perf_counter() - wall) * 1e6, (time.thread_time() - cpu) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description="Group commits with the server's request ids against version 4 ids.")
    parser.add_argument("--rows", type=int, default=200_000, help="ledger rows each database is grown to first")
    parser.add_argument("--batch", type=int, default=34, help="charges per commit (the server's mean under load)")
    parser.add_argument("--commits", type=int, default=300, help="timed commits per database, taken in turn")
    args = parser.parse_args()
    print(f"numlookup from {Path(numlookup.__file__).parent}")
    with tempfile.TemporaryDirectory(prefix="numlookup-bench-") as folder:
        ledgers = {
            "version 4 (reference)": _Ledger(Path(folder), "v4", lambda: str(uuid.uuid4())),
            "ours": _Ledger(Path(folder), "ours", new_request_id),
        }
        for ledger in ledgers.values():
            for _ in range(args.rows // args.batch):
                ledger.commit(args.batch)
            ledger.durable()
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in ledgers}
        for _ in range(args.commits):
            for name, ledger in ledgers.items():
                times[name].append(ledger.timed(args.batch))
        print(f"{args.commits} commits of {args.batch} charges each into a ledger of {args.rows:,} rows, in turn:")
        for name, ledger in ledgers.items():
            walls = [wall for wall, _ in times[name]]
            cpus = [cpu for _, cpu in times[name]]
            size = ledger.path.stat().st_size / 2**20
            print(
                f"  {name:22} wall {statistics.median(walls):7.0f} µs (p90 {statistics.quantiles(walls, n=10)[-1]:.0f})"
                f"  CPU {statistics.median(cpus):6.0f} µs  file {size:.1f} MiB"
            )
            ledger.engine.dispose()
        reference, ours = (times[name] for name in ledgers)
        for what, index in (("wall", 0), ("CPU", 1)):
            ratio = statistics.median(r[index] for r in reference) / statistics.median(o[index] for o in ours)
            print(f"  ratio reference / ours, {what}: {ratio:.2f}")


if __name__ == "__main__":
    main()
