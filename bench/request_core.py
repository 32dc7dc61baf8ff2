"""The per-request work below the HTTP edge, in-process: resolve, render, price; and a charge batch's commit.

Why: ``bench/server.py`` measures the whole route through wrk, where the edge
(ASGI layers, logging, sockets) and the other engineers' benchmarks on this
shared machine blur what the lookup's own work costs. This times that work
alone, as CPU time of the calling thread, against a reference measured in the
same run:

- *request core*: what ``api.lookup`` does for a 10-number request between the
  decoded body and the encoded answer (``Resolver.resolve``, ``iso_time``,
  ``number_result`` per number, the ``LookupSuccess`` encoding, ``Prices.total``)
  against the raw ASGI app's own per-request work (``bench/raw_asgi.py``:
  Basic credentials checked, the body decoded, 10 result items built and
  encoded). The ratio is reference / core: 1.0 would mean the lookup's work
  costs no more than a bare JSON route's.
- *resolve by batch size*: ``Resolver.resolve`` (which takes the one-by-one
  path up to ``SMALL_BATCH`` distinct numbers) against ``resolve_columns`` for
  1–64 distinct numbers: where the two cross is what ``SMALL_BATCH`` should be.
- *charge commit*: one group commit's transaction (``write_transaction`` +
  ``ledger.debit_batch``) of 1, 16, 64 and 512 charges on a fresh SQLite file
  (``synchronous=OFF``, so the disk's fsync is not in it; request ids made by
  the server's ``new_request_id``: ``bench/ledger_ids.py`` shows what random
  ones cost), against the same statements through ``sqlite3`` itself
  (one UPDATE, one ``executemany`` INSERT): the floor any SQL layer could reach.
- *thread hop*: awaiting a function that does nothing on a worker thread,
  through ``anyio.to_thread.run_sync``, through a one-thread executor (the
  charger's until it got a thread of its own) and through the charger's own
  thread (``billing.charger._CommitThread``: a queue, and one
  ``call_soon_threadsafe`` back), as CPU of the whole process per hop.
- *group charger*: the same sizes through ``GroupCharger.charge`` as the
  server calls it (that many concurrent charges on one event loop: the batch,
  its worker-thread transaction, the loop settling each request), as CPU of the
  whole process (every thread) per commit, with ``synchronous=OFF`` and with
  the server's default ``FULL`` (the fsync's kernel time is the commit's
  fixed cost there), against the sqlite3 floor of the same size.

It uses only the API the server calls, so it runs against another checkout too,
for an A/B of two versions in one minute::

    python bench/request_core.py [--rounds 7] [--seconds 0.3]
    PYTHONPATH=/path/to/other/checkout python bench/request_core.py   # the same figures for that code

Each figure is the median of ``--rounds`` rounds, with its spread (min–max),
each round ``--seconds`` of repetitions; the rounds of the measured code and
its reference alternate. It is run by hand and never by the test suite.
"""

from __future__ import annotations

import argparse
import base64
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import msgspec

HERE = Path(__file__).resolve().parent
sys.path += [str(HERE), str(HERE.parent)]  # raw_asgi, tests.corpus; appended: a PYTHONPATH checkout comes first

import raw_asgi  # noqa: E402  # importable once HERE is on the path

import numlookup  # noqa: E402
from numlookup.api.request_id import new_request_id  # noqa: E402
from numlookup.api.wire import LookupSuccess  # noqa: E402
from numlookup.billing.ledger import Debit, debit_batch  # noqa: E402
from numlookup.billing.prices import Prices  # noqa: E402
from numlookup.numbering import Resolver  # noqa: E402
from numlookup.results import iso_time, number_result  # noqa: E402
from numlookup.store.engine import make_engine, write_transaction  # noqa: E402

# The ten numbers of bench/wrk_lookup.lua.
NUMBERS = [
    "+37251000001",
    "+358401234567",
    "+4915112345678",
    "+447912345678",
    "+2348031234567",
    "+254712345678",
    "+27821234567",
    "+33612345678",
    "+46701234567",
    "+48501234567",
]
BODY = msgspec.json.encode({"numbers": NUMBERS})
_ENCODER = msgspec.json.Encoder()


def cpu_per_call(work: Callable[[], object], seconds: float, clock: Callable[[], float] = time.thread_time) -> float:
    """Microseconds of ``clock``'s CPU per call of ``work``, over about ``seconds`` of calls.

    ``clock`` is this thread's CPU by default; ``time.process_time`` counts every
    thread's, for work that hands part of itself to another (the charger's).
    """
    work()
    calls, start = 0, clock()
    deadline = start + seconds
    while True:
        work()
        calls += 1
        now = clock()
        if now >= deadline:
            return (now - start) / calls * 1e6


def rounds(pairs: dict[str, Callable[[], object]], count: int, seconds: float) -> dict[str, list[float]]:
    """Each of ``pairs`` timed ``count`` times, alternating between them round by round."""
    figures: dict[str, list[float]] = {name: [] for name in pairs}
    for _ in range(count):
        for name, work in pairs.items():
            figures[name].append(cpu_per_call(work, seconds))
    return figures


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):8.1f} µs  ({min(values):.1f}–{max(values):.1f})"


def request_core(resolver: Resolver, prices: Prices) -> Callable[[], object]:
    """``api.lookup._answer``'s own work for one offline 10-number request, without the charge's thread hop."""

    def work() -> bytes:
        resolutions = resolver.resolve(NUMBERS)
        checked_at = iso_time(datetime.now(UTC))
        valid = {r.e164: r for r in resolutions if r.valid and r.e164 is not None}
        result = [number_result(r, "seed", checked_at) for r in resolutions]
        encoded = _ENCODER.encode(LookupSuccess(request_id="0a1b2c3d4e5f", result=result))
        prices.total(valid, {}, None)
        return encoded

    return work


def raw_reference() -> Callable[[], object]:
    """The raw ASGI app's per-request work (bench/raw_asgi.py), without its socket."""
    authorization = b"Basic " + base64.b64encode(b"bench:secret-of-twenty-four")

    def work() -> bytes:
        assert raw_asgi._basic_matches(authorization, b"bench", b"secret-of-twenty-four")
        numbers = raw_asgi._decoder.decode(BODY).numbers
        network = raw_asgi._NETWORK
        result = [
            raw_asgi.Item(n, "ON", None, None, network, network, None, None, raw_asgi.CHECKED_AT, "offline")
            for n in numbers
        ]
        return raw_asgi._encoder.encode(raw_asgi.Answer("0a1b2c3d4e5f", result))

    return work


def charge_benches(folder: Path, sizes: list[int]) -> dict[str, Callable[[], object]]:
    """A group commit of each size through the ledger, and the same statements through sqlite3 alone."""
    from numlookup.accounts import create_account, get_account
    from numlookup.store import upgrade

    engine = make_engine(f"sqlite:///{folder / 'numlookup.db'}", sqlite_synchronous="OFF")
    upgrade(engine)
    create_account(engine, "bench", credits=10**9 * 1_000_000)
    account_id = get_account(engine, "bench").id

    def ledger_commit(size: int) -> Callable[[], object]:
        def work() -> object:
            debits = [Debit(account_id, new_request_id(), 100_000, 10) for _ in range(size)]
            with write_transaction(engine) as conn:
                return debit_batch(conn, debits)

        return work

    raw = sqlite3.connect(folder / "numlookup.db", isolation_level=None)
    raw.execute("PRAGMA synchronous=OFF")

    def sqlite_commit(size: int) -> Callable[[], object]:
        insert = (
            "INSERT INTO ledger (account_id, kind, request_id, amount, numbers, balance_after, created_at,"
            " offline, cached, live, invalid) VALUES (?, 'lookup', ?, ?, ?, ?, ?, NULL, NULL, NULL, NULL)"
        )

        def work() -> object:
            now = datetime.now(UTC).isoformat()
            raw.execute("BEGIN IMMEDIATE")
            balance, _ = raw.execute(
                "UPDATE accounts SET balance = balance - ? WHERE id = ? AND balance - reserved >= ?"
                " RETURNING balance, reserved",
                (100_000 * size, account_id, 100_000 * size),
            ).fetchone()
            rows = [(account_id, new_request_id(), -100_000, 10, balance, now) for _ in range(size)]
            raw.executemany(insert, rows)
            raw.execute("COMMIT")
            return balance

        return work

    benches: dict[str, Callable[[], object]] = {}
    for size in sizes:
        benches[f"ledger commit of {size:>3}"] = ledger_commit(size)
        benches[f"sqlite3 commit of {size:>3}"] = sqlite_commit(size)
    return benches


def charger_benches(folder: Path, sizes: list[int], synchronous: str) -> dict[str, Callable[[float], float]]:
    """``size`` concurrent ``GroupCharger.charge`` calls (one commit) per call, on one event loop; process CPU."""
    import asyncio

    from numlookup.accounts import create_account, get_account
    from numlookup.billing.charger import GroupCharger
    from numlookup.billing.ledger import Counts
    from numlookup.store import upgrade

    engine = make_engine(f"sqlite:///{folder / f'charger-{synchronous}.db'}", sqlite_synchronous=synchronous)
    upgrade(engine)
    create_account(engine, "bench", credits=10**9 * 1_000_000)
    account_id = get_account(engine, "bench").id
    loop = asyncio.new_event_loop()
    charger = GroupCharger(engine)
    counts = Counts(offline=10)

    def commit_of(size: int) -> Callable[[], object]:
        async def charges() -> object:
            return await asyncio.gather(
                *(charger.charge(account_id, new_request_id(), 100_000, 10, counts=counts) for _ in range(size))
            )

        return lambda: loop.run_until_complete(charges())

    return {
        f"charger {synchronous} {size:>3}": partial(cpu_per_call, commit_of(size), clock=time.process_time)
        for size in sizes
    }


def thread_hops() -> dict[str, Callable[[], object]]:
    """One call of a function that does nothing in a worker thread, awaited on an event loop: three ways."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import anyio.to_thread

    from numlookup.billing.charger import _Commit, _CommitThread

    loop = asyncio.new_event_loop()
    executor = ThreadPoolExecutor(max_workers=1)

    def nothing() -> None:
        return None

    async def through_anyio() -> None:
        await anyio.to_thread.run_sync(nothing)

    async def through_executor() -> None:
        await loop.run_in_executor(executor, nothing)

    charges = _CommitThread(lambda batch: [])

    async def through_charges_thread() -> None:
        commit = _Commit([], loop, loop.create_future())
        charges.submit(commit)
        await commit.finished

    return {
        "anyio.to_thread": lambda: loop.run_until_complete(through_anyio()),
        "one-thread executor": lambda: loop.run_until_complete(through_executor()),
        "charges thread": lambda: loop.run_until_complete(through_charges_thread()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="In-process per-request work and charge commits, against references.")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=float, default=0.3, help="seconds of repetitions per figure and round")
    args = parser.parse_args()
    print(f"numlookup from {Path(numlookup.__file__).parent}")

    resolver = Resolver()
    prices = Prices(offline=100_000)
    core = rounds(
        {"raw ASGI work": raw_reference(), "request core": request_core(resolver, prices)}, args.rounds, args.seconds
    )
    print("== a 10-number request's work (CPU of this thread per request; median, min–max)")
    for name, values in core.items():
        print(f"  {name:24} {spread(values)}")
    ratios = [r / c for r, c in zip(core["raw ASGI work"], core["request core"], strict=True)]
    print(f"  ratio raw / core         {statistics.median(ratios):8.3f}     ({min(ratios):.3f}–{max(ratios):.3f})")

    print("== resolve by distinct numbers per batch: Resolver.resolve against resolve_columns")
    from tests.corpus import sample_corpus

    inputs, hints = sample_corpus(2_000, seed=14)
    pool = list(dict.fromkeys(raw for raw, hint in zip(inputs, hints, strict=True) if hint is None and raw[:1] == "+"))
    for size in (1, 4, 10, 16, 24, 32, 48, 64):
        batch = pool[:size]
        figures = rounds(
            {"resolve": partial(resolver.resolve, batch), "columns": partial(resolver.resolve_columns, batch)},
            max(3, args.rounds // 2),
            args.seconds / 2,
        )
        print(f"  {size:>3} numbers: resolve {spread(figures['resolve'])}   columns {spread(figures['columns'])}")

    print("== a group commit's transaction, SQLite (synchronous=OFF), CPU of this thread per commit")
    with tempfile.TemporaryDirectory(prefix="numlookup-bench-") as folder:
        sizes = [1, 16, 64, 512]
        charges = rounds(charge_benches(Path(folder), sizes), args.rounds, args.seconds)
        for size in sizes:
            ledger_figure, sqlite_figure = (
                charges[f"ledger commit of {size:>3}"],
                charges[f"sqlite3 commit of {size:>3}"],
            )
            ratio = [s / ledger for s, ledger in zip(sqlite_figure, ledger_figure, strict=True)]
            print(
                f"  {size:>2} charges: ledger {spread(ledger_figure)}   sqlite3 {spread(sqlite_figure)}"
                f"   ratio sqlite3 / ledger {statistics.median(ratio):.3f}"
            )
        print("== a thread hop from the event loop (CPU of the whole process per hop)")
        hops = thread_hops()
        hop_figures: dict[str, list[float]] = {name: [] for name in hops}
        for _ in range(args.rounds):
            for name, hop in hops.items():
                hop_figures[name].append(cpu_per_call(hop, args.seconds, time.process_time))
        for name, values in hop_figures.items():
            print(f"  {name:24} {spread(values)}")
        print("== GroupCharger.charge, that many at once (one commit): CPU of the whole process per commit")
        floors = charges
        for synchronous in ("OFF", "FULL"):
            benches = charger_benches(Path(folder), sizes, synchronous)
            measured: dict[str, list[float]] = {name: [] for name in benches}
            for _ in range(args.rounds):
                for name, measure in benches.items():
                    measured[name].append(measure(args.seconds))
            for size in sizes:
                charger_figure = measured[f"charger {synchronous} {size:>3}"]
                floor = statistics.median(floors[f"sqlite3 commit of {size:>3}"])
                print(
                    f"  {synchronous:4} {size:>3} charges: charger {spread(charger_figure)}"
                    f"   per charge {statistics.median(charger_figure) / size:7.1f} µs"
                    f"   ratio sqlite3 (OFF) / charger {floor / statistics.median(charger_figure):.3f}"
                )


if __name__ == "__main__":
    main()
