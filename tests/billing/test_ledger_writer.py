"""The ledger writer process: the group commit's batches committed by a process of the worker's own, on SQLite.

A real process (``python -m numlookup.billing.ledger_writer``) on the test's
database file: the tests hold that it writes what the thread writes, that a
failed transaction fails its batch alone, and that a writer that dies (between
batches, or with one in flight) loses no charge and charges none twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select

from numlookup.accounts import get_account
from numlookup.billing import InsufficientCredits, ledger_rows
from numlookup.billing import ledger_writer as writer_module
from numlookup.billing.charger import GroupCharger
from numlookup.billing.ledger import Charge, Counts, debit_batch
from numlookup.billing.ledger_writer import Frames, LedgerWriterError, frame, recovered
from numlookup.store.engine import driver_transaction, make_engine
from numlookup.store.tables import ledger
from tests.conftest import AccountFactory
from tests.support import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "sqlite", reason="the ledger writer process serves SQLite files only")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _gone(pid: int, seconds: float = 10.0) -> bool:
    """Whether ``pid`` ended (and was reaped) within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid) or _zombie(pid):
            return True
        time.sleep(0.02)
    return False


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"
    except OSError:
        return False


@pytest.fixture
def charger(engine: Engine) -> Iterator[GroupCharger]:
    made = GroupCharger(engine, writer_process=True, writer_after=0)
    yield made
    writer = made.writer
    if writer is not None and writer.pid is not None and _alive(writer.pid):
        os.kill(writer.pid, signal.SIGKILL)


async def _ready(charger: GroupCharger) -> int:
    assert charger.writer is not None
    await charger.writer.wait_ready()
    assert charger.writer.pid is not None
    return charger.writer.pid


def test_frames_are_cut_from_any_pieces() -> None:
    """The frames come out whole and in order however the bytes arrive: byte by byte, or all at once."""
    bodies = [b"", b"a", b"\x00" * 300, bytes(range(256)) * 3]
    stream = b"".join(frame(body) for body in bodies)
    for size in (1, 3, 7, len(stream)):
        frames = Frames()
        got: list[bytes] = []
        for at in range(0, len(stream), size):
            got += frames.feed(stream[at : at + size])
        assert got == bodies


def test_the_writer_commits_what_the_thread_commits(engine: Engine, make_account: AccountFactory) -> None:
    """The same concurrent charges through the writer and through the thread: the same rows and refusals."""

    async def run(charger: GroupCharger, prefix: str, rich: int, poor: int) -> list[Charge | BaseException]:
        if charger.writer is not None:
            await _ready(charger)
        return await asyncio.gather(
            *(
                charger.charge(poor if i % 3 == 0 else rich, f"{prefix}-{i:02}", 7_000 + i, 1, counts=Counts(offline=1))
                for i in range(40)
            ),
            return_exceptions=True,
        )

    outcomes: dict[str, list[tuple[object, ...]]] = {}
    rows: dict[str, list[tuple[object, ...]]] = {}
    for prefix, process in (("w", True), ("t", False)):
        rich = get_account(engine, make_account(credits="10").name).id
        poor = get_account(engine, make_account(credits="0.05").name).id
        charger = GroupCharger(engine, writer_process=process, writer_after=0)
        done = asyncio.run(run(charger, prefix, rich, poor))
        assert (charger.stats.written > 0) is process  # the writer's batches, or the thread's
        asyncio.run(charger.close())
        assert all(isinstance(o, Charge | InsufficientCredits) for o in done), done
        outcomes[prefix] = [
            ("Charge", o.amount, o.balance_after) if isinstance(o, Charge) else ("InsufficientCredits", o.amount)
            for o in done
            if isinstance(o, Charge | InsufficientCredits)
        ]
        with engine.connect() as conn:
            stored = conn.execute(
                select(ledger).where(ledger.c.request_id.like(f"{prefix}-%")).order_by(ledger.c.id)
            ).all()
        rows[prefix] = [(r.request_id[1:], r.amount, r.numbers, r.balance_after, r.offline) for r in stored]
    assert outcomes["w"] == outcomes["t"]
    assert rows["w"] == rows["t"]
    assert ("InsufficientCredits", 7_000) not in outcomes["w"]  # the poor account's first charges were covered
    assert any(o[0] == "InsufficientCredits" for o in outcomes["w"])


def test_a_failed_transaction_fails_its_batch_alone(
    engine: Engine, make_account: AccountFactory, charger: GroupCharger
) -> None:
    """A charge of an account that does not exist fails the writer's transaction: every charge of that batch
    fails, nothing of it is written, and the next batch commits through the writer as before."""
    payer = get_account(engine, make_account(credits="1").name)

    async def run() -> tuple[list[Charge | BaseException], Charge]:
        await _ready(charger)
        failed = await asyncio.gather(
            charger.charge(payer.id, "lost-1", 1_000, 1),
            charger.charge(987_654, "lost-2", 1_000, 1),
            return_exceptions=True,
        )
        return list(failed), await charger.charge(payer.id, "kept", 1_000, 1)

    failed, kept = asyncio.run(run())
    assert all(isinstance(o, LedgerWriterError) for o in failed), failed
    assert "NoResultFound" in str(failed[0])
    assert kept.balance_after == 999_000
    assert [r.request_id for r in ledger_rows(engine, payer.id) if r.kind == "lookup"] == ["kept"]
    assert charger.stats.written == 1  # the failed batch was the writer's too, but not a commit


def test_a_writer_killed_between_batches_is_replaced_and_loses_nothing(
    engine: Engine,
    make_account: AccountFactory,
    charger: GroupCharger,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Killed while idle: the next charges commit in the thread meanwhile; after the pause a new writer serves."""
    payer = get_account(engine, make_account(credits="1").name)
    monkeypatch.setattr(writer_module, "RESPAWN_SECONDS", 0.5)

    async def run() -> tuple[int, int, list[Charge]]:
        first = await _ready(charger)
        charged = [await charger.charge(payer.id, "before", 1_000, 1)]
        os.kill(first, signal.SIGKILL)
        await asyncio.sleep(0.3)  # the loop reads the writer's end
        charged.append(await charger.charge(payer.id, "meanwhile", 1_000, 1))
        await asyncio.sleep(0.5)
        second = await _ready(charger)
        charged.append(await charger.charge(payer.id, "after", 1_000, 1))
        await charger.close()
        return first, second, charged

    with caplog.at_level(logging.WARNING, logger="numlookup.billing.ledger_writer"):
        first, second, charged = asyncio.run(run())
    assert first != second and _gone(second)
    assert [c.balance_after for c in charged] == [999_000, 998_000, 997_000]
    assert charger.stats.written == 2  # "before" and "after"; "meanwhile" went through the thread
    assert [r.request_id for r in reversed(ledger_rows(engine, payer.id)) if r.kind == "lookup"] == [
        "before",
        "meanwhile",
        "after",
    ]
    assert any(f"pid {first}" in r.getMessage() and "gone" in r.getMessage() for r in caplog.records)


def test_a_writer_killed_with_a_batch_in_flight_loses_no_charge(
    engine: Engine, make_account: AccountFactory, charger: GroupCharger
) -> None:
    """The writer stopped before it read the batch, then killed: the ledger has none of it, so the thread
    commits it, once; the request gets its charge."""
    payer = get_account(engine, make_account(credits="1").name)

    async def run() -> Charge:
        pid = await _ready(charger)
        os.kill(pid, signal.SIGSTOP)
        request = asyncio.ensure_future(charger.charge(payer.id, "in-flight", 1_000, 1))
        await asyncio.sleep(0.2)
        assert not request.done()  # sent, and waiting for a writer that does not run
        os.kill(pid, signal.SIGKILL)
        return await asyncio.wait_for(request, 30)

    charged = asyncio.run(run())
    assert charged.balance_after == 999_000
    assert [r.request_id for r in ledger_rows(engine, payer.id) if r.kind == "lookup"] == ["in-flight"]
    assert charger.stats.written == 0


def test_a_batch_the_dead_writer_committed_is_read_back(engine: Engine, make_account: AccountFactory) -> None:
    """``recovered``: rows of the batch mean it committed (a charge without one was refused); none mean not."""
    payer = get_account(engine, make_account(credits="0.002").name)

    class Debit:
        def __init__(self, request_id: str, amount: int) -> None:
            self.account_id, self.request_id, self.amount, self.numbers, self.counts = (
                payer.id,
                request_id,
                amount,
                1,
                None,
            )

    batch = [Debit("r-1", 1_500), Debit("r-2", 1_500)]
    assert recovered(engine, batch) is None
    with driver_transaction(engine) as (conn, cursor):
        written = debit_batch(conn, batch, cursor)
    back = recovered(engine, batch)
    assert back is not None and isinstance(written[0], Charge) and isinstance(written[1], InsufficientCredits)
    assert back[0] == written[0]
    assert isinstance(back[1], InsufficientCredits) and (back[1].balance, back[1].amount) == (500, 1_500)


def test_a_cancelled_drain_still_answers_the_writers_batch(
    engine: Engine, make_account: AccountFactory, charger: GroupCharger
) -> None:
    """The drain cancelled while the writer holds its batch: the writer's answer still settles the request."""
    payer = get_account(engine, make_account(credits="1").name)

    async def run() -> tuple[Charge, bool]:
        pid = await _ready(charger)
        os.kill(pid, signal.SIGSTOP)
        request = asyncio.ensure_future(charger.charge(payer.id, "kept", 1_000, 1))
        await asyncio.sleep(0.1)
        worker = charger._worker
        assert worker is not None
        for _ in range(2):
            worker.cancel()
            await asyncio.sleep(0.05)
            assert not worker.done()  # still waiting for the writer's answer
        os.kill(pid, signal.SIGCONT)
        done = await asyncio.wait_for(request, 30)
        await asyncio.gather(worker, return_exceptions=True)
        return done, worker.cancelled()

    charged, cancelled = asyncio.run(run())
    assert cancelled and charged.balance_after == 999_000
    assert charger.stats.written == 1


def test_the_writer_outlives_signals_and_ends_with_its_worker(
    engine: Engine, make_account: AccountFactory, charger: GroupCharger
) -> None:
    """SIGINT and SIGTERM (a Ctrl-C, a service manager) are the worker's to act on: the writer still
    commits the shutdown's last batch, and ends when the worker closes it."""
    payer = get_account(engine, make_account(credits="1").name)

    async def run() -> tuple[int, Charge]:
        pid = await _ready(charger)
        os.kill(pid, signal.SIGINT)
        os.kill(pid, signal.SIGTERM)
        await asyncio.sleep(0.2)
        charged = await charger.charge(payer.id, "last", 1_000, 1)
        await charger.close()
        return pid, charged

    pid, charged = asyncio.run(run())
    assert charged.balance_after == 999_000 and charger.stats.written == 1
    assert _gone(pid)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ledger).where(ledger.c.request_id == "last")).scalar() == 1


def test_the_writer_starts_only_once_the_worker_charged_enough(engine: Engine, make_account: AccountFactory) -> None:
    """Below ``writer_after`` charges no process is started (a test's or a demo's server never pays for one);
    the batch that follows them starts it, and commits in the thread while it starts."""
    payer = get_account(engine, make_account(credits="1").name)
    charger = GroupCharger(engine, writer_process=True, writer_after=3)
    assert charger.writer is not None

    async def run() -> tuple[int | None, int | None, int]:
        for i in range(3):
            await charger.charge(payer.id, f"early-{i}", 1_000, 1)
        before = charger.writer.pid if charger.writer is not None else None
        await charger.charge(payer.id, "starts-it", 1_000, 1)
        started = charger.writer.pid if charger.writer is not None else None
        began = time.monotonic()
        await charger.close()
        return before, started, int(time.monotonic() - began)

    before, started, closing = asyncio.run(run())
    assert before is None and started is not None
    assert _gone(started) and closing < 5
    assert charger.stats.written == 0 and charger.stats.charges == 4


def test_no_writer_for_a_database_that_is_not_a_sqlite_file() -> None:
    """In-memory SQLite (one connection's own database) has no file a second process could write."""
    assert GroupCharger(create_engine("sqlite://"), writer_process=True).writer is None


def test_the_writer_commits_as_durably_as_the_engine_is_set_to(tmp_path: Path) -> None:
    """The writer opens its own connection: it is handed the engine's ``sqlite_synchronous``, not a default."""
    engine = make_engine(f"sqlite:///{tmp_path / 'ledger.db'}", sqlite_synchronous="NORMAL")
    charger = GroupCharger(engine, writer_process=True, sqlite_synchronous="NORMAL")
    assert charger.writer is not None and charger.writer.synchronous == "NORMAL"
    default = GroupCharger(make_engine(f"sqlite:///{tmp_path / 'full.db'}"), writer_process=True)
    assert default.writer is not None and default.writer.synchronous == "FULL"
