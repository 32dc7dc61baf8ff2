"""The live cache's read on the event loop (sqlite3) against the read in a thread (SQLAlchemy), alternating.

Why: a request with a live-routed number reads the cache before any source is
asked, so the read is on every live request's way (a cache hit's whole live
cost). ``live.cache._HereRead`` runs it on the loop; this measures what that
changed for one request's read (wall time and the process's CPU per read,
sequential, on one loop) and for a burst's read of 800 numbers, both ways, in
alternating rounds on the same SQLite file, with the ratio of the medians.
It is run by hand and never by the test suite::

    python bench/live_cache_read.py [--rows 20000] [--reads 300] [--rounds 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from numlookup.live.cache import LiveCache  # noqa: E402  # after sys.path names the checkout
from numlookup.live.reads import CoalescedReads  # noqa: E402  # after sys.path names the checkout
from numlookup.live.source import LiveAnswer  # noqa: E402  # after sys.path names the checkout
from numlookup.store import make_engine, upgrade  # noqa: E402  # after sys.path names the checkout


def run(reads: CoalescedReads, batches: list[list[str]]) -> tuple[float, float]:
    """Wall and CPU seconds per read of ``batches``, one after another on one loop."""

    async def all_of() -> None:
        for numbers in batches:
            await reads.read(numbers)

    wall, cpu = time.perf_counter(), time.process_time()
    asyncio.run(all_of())
    return (time.perf_counter() - wall) / len(batches), (time.process_time() - cpu) / len(batches)


def _spread(seconds: list[float]) -> str:
    return f"{statistics.median(seconds) * 1e6:.0f} µs [{min(seconds) * 1e6:.0f}..{max(seconds) * 1e6:.0f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20000, help="answers stored in the cache")
    parser.add_argument("--reads", type=int, default=300, help="sequential one-number reads per round")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cache-read-") as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'numlookup.db'}")
        upgrade(engine)
        cache = LiveCache(engine, ttl_reachability=300, ttl_network=3600)
        now = datetime.now(UTC)
        stored = [f"+3725{1000000 + i:07d}" for i in range(args.rows)]
        cache.write([("upstream:a", LiveAnswer(n, True, checked_at=now)) for n in stored], now)
        hits = [[stored[i * 7 % args.rows]] for i in range(args.reads)]  # one request's hit each
        burst = [[f"+3726{1000000 + i:07d}" for i in range(800)]] * 20  # a burst's misses in one read
        with ThreadPoolExecutor(max_workers=4) as executor:
            ways = {
                "in a thread (SQLAlchemy)": CoalescedReads(cache, executor),
                "on the loop (sqlite3)": CoalescedReads(cache, executor, here=cache.read_here),
            }
            figures: dict[tuple[str, str], list[tuple[float, float]]] = {}
            for _ in range(args.rounds):
                for name, reads in ways.items():  # alternating: the machine's load falls on both alike
                    figures.setdefault((name, "hit"), []).append(run(reads, hits))
                    figures.setdefault((name, "burst"), []).append(run(reads, burst))
        cache.close()
        engine.dispose()
    for kind, what in (("hit", "one request's read, a hit"), ("burst", "a read of 800 numbers, all misses")):
        print(f"{what} ({args.rounds} rounds, median [min..max]):")
        medians = {}
        for name in ways:
            walls = [w for w, _ in figures[(name, kind)]]
            cpus = [c for _, c in figures[(name, kind)]]
            medians[name] = statistics.median(walls), statistics.median(cpus)
            print(f"   {name}: wall {_spread(walls)}, CPU {_spread(cpus)}")
        (thread_wall, thread_cpu), (loop_wall, loop_cpu) = medians.values()
        print(f"   on the loop / in a thread: wall {loop_wall / thread_wall:.2f}, CPU {loop_cpu / thread_cpu:.2f}")


if __name__ == "__main__":
    main()
