"""The group commit's transactions in a process of their own: the ledger writer, one per worker, on SQLite.

Why a process: a batch's transaction (the debit, the ledger rows, the commit)
is Python and SQLite work that, on the charges' thread, ran under the event
loop's GIL. The two took turns at every statement (sqlite3 lets go of the GIL
for each step), and the loop paid for the handoffs as much as the thread did.
In a process of its own the transaction runs beside the loop on the other
core, and the loop only sends the batch and reads the outcomes: one frame each
way. The transaction costs about what it cost in the thread; the loop is the
lighter by the handoffs. ``bench/server_cpu.py --ledger-writer both`` (a server
each way, loaded in alternation, the writer's CPU counted with its worker's)
measured 0.916 (0.728–0.946 over three rounds) of the thread's CPU per request
with the request log on, 0.956 (0.681–1.082) with it off.

A worker spawns its writer once it has charged ``charger.WRITER_AFTER_CHARGES``
requests (one that serves a request now and then never needs one), and commits
in the thread, as before, until the writer says it is ready; a batch that carries attachments
(idempotent responses, live answers: objects of the worker's, stored through its
own services) is always committed in the thread. The writer keeps one connection
and holds the same write locks as every writer of the file
(``store.engine.driver_transaction``), so its transactions take turns with the
worker's others.

The protocol: frames of a 4-byte little-endian length and a MessagePack body.
The worker sends :class:`_Config` once, then one :class:`_Batch` at a time; the
writer answers :class:`_Ready` once, then a :class:`_Committed` or a
:class:`_Failed` per batch. The writer ends when the socket does (the worker
closed it, or died): SIGINT and SIGTERM are the worker's to act on, so a
shutdown flushes its last batches through a writer still running.

If the writer dies with a batch in flight, the worker waits for it to be gone
(its locks with it) and reads the ledger: rows of the batch's requests mean its
transaction committed (SQLite commits whole or not at all), and they are the
outcomes; no rows mean it did not, and the batch is committed in the thread.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec
from sqlalchemy import Connection, Engine, select

from numlookup.billing.ledger import Charge, Counts, InsufficientCredits, balances, debit_batch
from numlookup.store.engine import driver_transaction_on, make_engine, one_writer
from numlookup.store.tables import ledger

log = logging.getLogger(__name__)

_LENGTH = struct.Struct("<I")
RESPAWN_SECONDS = 30.0  # after a writer died, batches commit in the thread this long before another is started
EXIT_SECONDS = 10.0  # how long a closing worker waits for its writer to end before killing it
_READ_SIZE = 1 << 16

Outcome = Charge | InsufficientCredits


class _Config(msgspec.Struct, array_like=True, tag=0):
    url: str  # rendered with its password: it travels over the socket, never on a command line
    synchronous: str


class _Charge(msgspec.Struct, array_like=True, frozen=True):
    """One charge of a batch, a ``ledger.Debiting`` as it is: decoded in C, not built in Python on the way."""

    account_id: int
    request_id: str
    amount: int
    numbers: int
    counts: Counts | None


class _Batch(msgspec.Struct, array_like=True, tag=1):
    charges: list[_Charge]


class _Ready(msgspec.Struct, array_like=True, tag=2):
    pid: int


class _Committed(msgspec.Struct, array_like=True, tag=3):
    # Per charge, in order: (ledger id, amount, balance after, reserved) for a charge made, and
    # (0, amount, balance, reserved) for one the balance did not cover (ledger ids start at 1).
    outcomes: list[tuple[int, int, int, int]]


class _Failed(msgspec.Struct, array_like=True, tag=4):
    error: str  # the exception's type and message; the transaction was rolled back


_ToWriter = _Config | _Batch
_FromWriter = _Ready | _Committed | _Failed


class LedgerWriterError(RuntimeError):
    """The writer's transaction for a batch failed and was rolled back: nothing of the batch was written."""


class Frames:
    """Length-prefixed frames cut from the bytes a socket delivers, in whatever pieces."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """The frames ``data`` completes, in order (a partial one is kept for the next call)."""
        buffer = self._buffer
        buffer += data
        frames: list[bytes] = []
        at = 0
        while len(buffer) - at >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(buffer, at)
            end = at + _LENGTH.size + size
            if len(buffer) < end:
                break
            frames.append(bytes(buffer[at + _LENGTH.size : end]))
            at = end
        del buffer[:at]
        return frames


def frame(body: bytes) -> bytes:
    return _LENGTH.pack(len(body)) + body


def outcomes_of(committed: _Committed) -> list[Outcome]:
    return [
        Charge(ledger_id, amount, after, reserved) if ledger_id else InsufficientCredits(after, amount, reserved)
        for ledger_id, amount, after, reserved in committed.outcomes
    ]


def batch_of(debits: Sequence[Any]) -> _Batch:
    """The frame of a batch of ``ledger.Debiting`` charges."""
    return _Batch([_Charge(d.account_id, d.request_id, d.amount, d.numbers, d.counts) for d in debits])


# ------------------------------------------------------------------------------------------------- the worker's side


class LedgerWriter:
    """The worker's handle on its writer process: one batch in flight at a time, answered on the event loop.

    ``submit`` sends a batch and returns at once; ``deliver`` is called on the
    loop with the batch's outcomes or its exception once the writer answered
    (or, if it died, once the ledger told what became of the batch). Not
    thread-safe: the event loop's alone.
    """

    def __init__(self, engine: Engine, synchronous: str = "FULL") -> None:
        """``synchronous``: the ``PRAGMA synchronous`` the engine's connections run with (``sqlite_synchronous``);
        the writer's commits must be as durable as theirs."""
        self.engine = engine
        self.synchronous = synchronous
        self._sock: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._frames = Frames()
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop the socket is read on
        self._ready = False
        self._dead_since: float | None = None  # when the last writer was found dead
        self._in_flight: tuple[Sequence[Any], Callable[[list[Outcome] | None, BaseException | None], None]] | None = (
            None
        )
        self._recovering: asyncio.Task[None] | None = None
        self._reaping: set[asyncio.Task[None]] = set()  # the dead writers waited for (a task is kept while it runs)
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder(_FromWriter)

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def ready(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether a batch may go to the writer now, from ``loop``: it answered that it is ready, and is idle."""
        return self._ready and self._loop is loop and self._in_flight is None

    def ensure_started(self, loop: asyncio.AbstractEventLoop) -> None:
        """A writer for the batches to come, its answers read on ``loop``.

        Starts one if there is none (unless one died less than ``RESPAWN_SECONDS``
        ago), or moves the reading of its socket to ``loop`` when the charger moved
        to another event loop (a test's, a restarted server's). It is ready once it
        says so, on a later turn of the loop.
        """
        if self._process is None and self._recovering is None:
            if self._dead_since is None or time.monotonic() - self._dead_since >= RESPAWN_SECONDS:
                self._start(loop)
        elif self._loop is not loop and self._in_flight is None and self._sock is not None:
            self._watch(loop)

    def submit(
        self, batch: Sequence[Any], deliver: Callable[[list[Outcome] | None, BaseException | None], None]
    ) -> bool:
        """Send ``batch`` (``ready`` said yes); False if the writer turned out gone and nothing was sent."""
        assert self._sock is not None and self._in_flight is None
        try:
            self._sock.sendall(frame(self._encoder.encode(batch_of(batch))))
        except OSError:  # the writer is gone (EPIPE, reset) or stuck with a full socket: the thread commits it
            self._lost("its socket refused a batch")
            return False
        self._in_flight = (batch, deliver)
        return True

    async def wait_ready(self, timeout: float = 30.0) -> None:
        """Until the writer answered that it is ready (it is started if need be): for tests and the bench."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.ready(loop):
            self.ensure_started(loop)
            if loop.time() > deadline:
                raise TimeoutError("the ledger writer did not become ready")
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        """End the writer (the charger is idle: nothing is in flight): close its socket, wait for it to exit."""
        if self._recovering is not None:
            await asyncio.shield(self._recovering)
        for reaping in list(self._reaping):
            await asyncio.shield(reaping)
        process, ready = self._forget()
        if process is not None:
            # One not ready yet was sent no batch: there is nothing of it to wait for.
            await asyncio.to_thread(_reap, process, EXIT_SECONDS if ready else 0.0)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        ours, theirs = socket.socketpair()
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", __name__, str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
            )
        except OSError as exc:
            ours.close()
            self._dead_since = time.monotonic()
            log.warning("the ledger writer process did not start (%s); charges commit in the worker", exc)
            return
        finally:
            theirs.close()
        config = _Config(self.engine.url.render_as_string(hide_password=False), self.synchronous)
        ours.sendall(frame(self._encoder.encode(config)))  # an empty socket's buffer takes it whole
        ours.setblocking(False)
        self._sock = ours
        self._frames = Frames()
        self._ready = False
        self._watch(loop)

    def _watch(self, loop: asyncio.AbstractEventLoop) -> None:
        self._stop_watching()
        assert self._sock is not None
        loop.add_reader(self._sock.fileno(), self._readable)
        self._loop = loop

    def _stop_watching(self) -> None:
        if self._loop is not None and self._sock is not None and not self._loop.is_closed():
            self._loop.remove_reader(self._sock.fileno())
        self._loop = None

    def _readable(self) -> None:
        """On the loop: what the writer sent (its frames handled in order), or its end."""
        assert self._sock is not None
        try:
            data = self._sock.recv(_READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._lost("it exited")
            return
        for body in self._frames.feed(data):
            message = self._decoder.decode(body)
            if isinstance(message, _Ready):
                self._ready = True
                continue
            assert self._in_flight is not None, "the ledger writer answered a batch it was not sent"
            _, deliver = self._in_flight
            self._in_flight = None
            if isinstance(message, _Committed):
                deliver(outcomes_of(message), None)
            else:
                deliver(None, LedgerWriterError(message.error))

    def _forget(self) -> tuple[subprocess.Popen[bytes] | None, bool]:
        """Stop reading the writer and close its socket; the process it was, and whether it was ready."""
        process, ready = self._process, self._ready
        self._stop_watching()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._process = None
        self._ready = False
        return process, ready

    def _lost(self, why: str) -> None:
        """The writer is gone: forget it, and settle the batch it had (once it is surely gone) from the ledger."""
        process, _ = self._forget()
        self._dead_since = time.monotonic()
        code = process.poll() if process is not None else None
        log.warning(
            "the ledger writer process (pid %s) is gone: %s%s; charges commit in the worker for %d s",
            process.pid if process is not None else "?",
            why,
            f", exit code {code}" if code is not None else "",
            RESPAWN_SECONDS,
        )
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None and process is not None:
            self._recovering = asyncio.get_running_loop().create_task(self._recover(process, *in_flight))
        elif process is not None:
            reaping = asyncio.get_running_loop().create_task(asyncio.to_thread(_reap, process))
            self._reaping.add(reaping)
            reaping.add_done_callback(self._reaping.discard)

    async def _recover(
        self,
        process: subprocess.Popen[bytes],
        batch: Sequence[Any],
        deliver: Callable[[list[Outcome] | None, BaseException | None], None],
    ) -> None:
        try:
            await asyncio.to_thread(_reap, process, 0.0)  # its locks go with it: the ledger then tells
            outcomes = await asyncio.to_thread(recovered, self.engine, batch)
        except BaseException as exc:
            deliver(None, exc)
            if not isinstance(exc, Exception):
                raise
        else:
            deliver(outcomes, None)
        finally:
            self._recovering = None


def _reap(process: subprocess.Popen[bytes], grace: float = EXIT_SECONDS) -> None:
    """Wait ``grace`` seconds for the writer to exit, then kill it; return once it is gone."""
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def recovered(engine: Engine, batch: Sequence[Any]) -> list[Outcome] | None:
    """A batch whose writer died: its outcomes if its transaction committed (its rows are there), else None.

    One transaction writes every charge of a batch that the balance covers, so
    rows of some of its requests mean it committed, and a charge without a row
    was one the balance did not cover: its refusal is told from the balance now
    (what it was then is not known). No rows at all: nothing was written, and the
    batch, committed anew, gets the same outcomes it would have.
    """
    ids = [d.request_id for d in batch]
    with engine.connect() as conn:
        found = {
            row.request_id: row
            for row in conn.execute(
                select(ledger.c.request_id, ledger.c.id, ledger.c.amount, ledger.c.balance_after).where(
                    ledger.c.request_id.in_(ids)
                )
            )
        }
        if not found:
            return None
        held: dict[int, tuple[int, int]] = {}
        outcomes: list[Outcome] = []
        for d in batch:
            balance, reserved = held.get(d.account_id) or held.setdefault(d.account_id, balances(conn, d.account_id))
            row = found.get(d.request_id)
            if row is None:
                outcomes.append(InsufficientCredits(balance, d.amount, reserved))
            else:
                outcomes.append(Charge(int(row.id), -int(row.amount), int(row.balance_after), reserved))
    return outcomes


# ------------------------------------------------------------------------------------------------- the writer's side


def _write(engine: Engine, kept: list[Connection], batch: _Batch) -> _Committed | _Failed:
    """One batch's transaction on the kept connection (opened again after a failure); its answer."""
    try:
        with one_writer(engine):
            if not kept:
                kept.append(engine.connect())
            conn = kept[0]
            with driver_transaction_on(engine, conn) as (_, cursor):
                outcomes = debit_batch(conn, batch.charges, cursor)
    except Exception as exc:
        if kept:
            kept.pop().close()  # the next batch checks a fresh connection out (the pool's checks run again)
        return _Failed(f"{type(exc).__name__}: {exc}")
    return _Committed(
        [
            (o.ledger_id, o.amount, o.balance_after, o.reserved)
            if isinstance(o, Charge)
            else (0, o.amount, o.balance, o.reserved)
            for o in outcomes
        ]
    )


def serve(sock: socket.socket) -> None:
    """The writer's loop: the config, then batches, until the worker closes the socket."""
    encoder, decoder = msgspec.msgpack.Encoder(), msgspec.msgpack.Decoder(_ToWriter)
    frames = Frames()
    engine: Engine | None = None
    kept: list[Connection] = []
    try:
        while data := _received(sock):
            for body in frames.feed(data):
                message = decoder.decode(body)
                if isinstance(message, _Config):
                    engine = make_engine(message.url, sqlite_synchronous=message.synchronous, create=False)
                    with engine.connect():
                        pass  # the first connection opened (and its PRAGMAs run) before the worker counts on it
                    sock.sendall(frame(encoder.encode(_Ready(os.getpid()))))
                    continue
                assert engine is not None, "a batch before the config"
                answer = frame(encoder.encode(_write(engine, kept, message)))
                try:
                    sock.sendall(answer)
                except OSError:  # the worker is gone: it reads what became of the batch from the ledger
                    return
    finally:
        for conn in kept:
            conn.close()
        if engine is not None:
            engine.dispose()


def _received(sock: socket.socket) -> bytes:
    """What the worker sent next; nothing once it closed the socket (or died: a reset is an end too)."""
    try:
        return sock.recv(_READ_SIZE)
    except OSError:
        return b""


def main() -> None:
    # The worker decides when its writer ends (by closing the socket): a Ctrl-C or a
    # service manager's SIGTERM reaches the whole process group, and the worker's
    # graceful shutdown still has batches to commit through this process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    serve(socket.socket(fileno=int(sys.argv[1])))


if __name__ == "__main__":
    main()
