"""The Osmocom CTRL protocol over IPA: GET requests pipelined on one persistent link.

osmo-hlr (and every Osmocom program) answers ``GET <id> <variable>`` on its CTRL
port with ``GET_REPLY <id> <variable> <value>`` or ``ERROR <id> <reason>``,
IPA-framed on the OSMO stream (see ``ipa``). One link carries every query; GETs
go out with unique ids and replies are matched on them, so a batch costs one
round trip's latency rather than one per variable. This module knows nothing of
what the variables mean: ``osmo_hlr`` reads the subscriber records.

Every failure is a ``SourceError`` naming the peer, safe to show a client. A
link that fails is not used again; the next ``get_all`` opens a fresh one.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from numlookup.live.ipa import EXT_CTRL, IpaConnection, IpaError
from numlookup.live.source import SourceError

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


class LinkLost(SourceError):
    """The CTRL connection ended under us (EOF or reset); a fresh one may work."""


@dataclass(frozen=True, slots=True)
class CtrlReply:
    """One CTRL answer: ``ok`` for GET_REPLY (``value`` is the value), else ERROR (``value`` is the reason)."""

    ok: bool
    value: str


class CtrlLink:
    """One CTRL connection: a reader task matching replies to waiting GETs by id.

    When the link fails every waiting GET fails with the same ``SourceError``
    and the link is not used again.
    """

    def __init__(self, conn: IpaConnection, peer: str) -> None:
        self.conn = conn
        self.peer = peer
        self.pending: dict[str, tuple[str, asyncio.Future[CtrlReply]]] = {}
        """Waiting GETs by command id: the variable asked for, and where its reply goes."""
        self.failure: SourceError | None = None
        self.used = False
        """Set once a query has run on this link: a reused link may be stale."""
        self._write_lock = asyncio.Lock()
        self._reader = asyncio.create_task(self._read_loop(), name=f"{peer} CTRL reader")

    @property
    def alive(self) -> bool:
        return self.failure is None

    def _lost(self) -> LinkLost:
        return LinkLost(f"{self.peer} closed the connection")

    async def get(self, cmd_id: str, variable: str) -> CtrlReply:
        """Send one GET and wait for its reply; raises ``SourceError`` on any link failure.

        No deadline here: the caller bounds the whole query.
        """
        if self.failure is not None:
            raise self.failure
        future: asyncio.Future[CtrlReply] = asyncio.get_running_loop().create_future()
        self.pending[cmd_id] = (variable, future)
        try:
            async with self._write_lock:
                await self.conn.send(EXT_CTRL, f"GET {cmd_id} {variable}".encode("ascii"))
            return await future
        except (ConnectionError, OSError) as exc:
            raise self.fail(self._lost()) from exc
        finally:
            self.pending.pop(cmd_id, None)

    async def _read_loop(self) -> None:
        try:
            while True:
                msg = await self.conn.recv()
                if msg.ext != EXT_CTRL:
                    continue  # not CTRL (nothing else is expected on this port): not ours
                self._dispatch(msg.payload)
        except asyncio.CancelledError:
            raise
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            log.debug("%s CTRL connection lost: %r", self.peer, exc)
            self.fail(self._lost())
        except (IpaError, UnicodeDecodeError, ValueError) as exc:
            log.warning("%s CTRL sent something unreadable: %r", self.peer, exc)
            self.fail(SourceError(f"{self.peer} sent an unreadable answer"))
        except OSError as exc:
            log.debug("%s CTRL connection error: %r", self.peer, exc)
            self.fail(self._lost())

    def _dispatch(self, payload: bytes) -> None:
        """Hand one CTRL message to its waiting GET.

        Raises ``ValueError`` for text that is not a CTRL message at all, which
        fails the link: after garbage nothing later on it can be trusted.
        """
        text = payload.decode("ascii")
        verb, _, rest = text.partition(" ")
        if verb == "TRAP":
            return  # unsolicited notifications; we subscribe to none
        if verb not in ("GET_REPLY", "ERROR", "SET_REPLY"):
            raise ValueError(f"not a CTRL message: {text[:40]!r}")
        cmd_id, _, rest = rest.partition(" ")
        variable, future = self.pending.get(cmd_id, ("", None))
        if future is None or future.done():
            # An id we did not send (or gave up on): e.g. "ERROR err …" for a
            # command the peer could not parse at all. The GET it belonged to,
            # if any, times out.
            log.debug("%s CTRL reply for unknown id %r: %r", self.peer, cmd_id, text[:80])
            return
        if verb == "ERROR":
            future.set_result(CtrlReply(ok=False, value=rest))
            return
        replied_variable, _, value = rest.partition(" ")
        if replied_variable != variable:
            raise ValueError(f"reply {cmd_id} is for {replied_variable!r}, not {variable!r}")
        future.set_result(CtrlReply(ok=True, value=value))

    def fail(self, error: SourceError) -> SourceError:
        """Mark the link dead with ``error``, fail every waiting GET, and close it.

        Returns the link's failure: the first one wins, so every GET of a batch
        reports the same cause.
        """
        if self.failure is None:
            self.failure = error
        failure = self.failure
        for _variable, future in self.pending.values():
            if not future.done():
                future.set_exception(failure)
                # Retrieved by the GET awaiting it; if it was already cancelled
                # nobody will, so mark it retrieved to keep the log clean.
                future.exception()
        self.conn.writer.close()
        if not self._reader.done() and self._reader is not asyncio.current_task():
            self._reader.cancel()
        return failure

    async def close(self) -> None:
        self.fail(SourceError(f"{self.peer} source closed"))
        try:
            await self._reader
        except (asyncio.CancelledError, Exception):
            pass
        await self.conn.close()


class CtrlClient:
    """GETs to one CTRL peer over a persistent link, opened on first use and again after a failure.

    ``max_in_flight`` bounds GETs in flight on the link: a peer that answers
    them one after the other (osmo-hlr reads one SQLite file) gains nothing from
    a deep pipeline, and a big batch would crowd out other requests.
    """

    def __init__(self, host: str, port: int, *, peer: str, max_in_flight: int) -> None:
        self.host = host
        self.port = port
        self.peer = peer
        self._ids = itertools.count(1)
        self._link: CtrlLink | None = None
        self._connect_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(max_in_flight)

    async def get_all(self, variables: Mapping[K, str]) -> dict[K, CtrlReply]:
        """One GET per variable, pipelined; the replies under the same keys.

        A link that sat idle may have been closed by a peer restart without us
        noticing yet; GETs are reads, so one lost reused link is retried on a
        fresh connection. A fresh link that dies is the peer's doing: raised.
        """
        for attempt in (1, 2):
            link = await self._connected()
            reused = link.used
            link.used = True
            try:
                return await self._get_all(link, variables)
            except LinkLost:
                if not reused or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def abort(self, error: SourceError) -> None:
        """Drop the link (a query timed out on it) so the next query starts clean instead of queueing behind it."""
        if self._link is not None:
            self._link.fail(error)

    async def close(self) -> None:
        link, self._link = self._link, None
        if link is not None:
            await link.close()

    async def _connected(self) -> CtrlLink:
        async with self._connect_lock:
            if self._link is not None and self._link.alive:
                return self._link
            if self._link is not None:
                await self._link.close()
                self._link = None
            try:
                conn = await IpaConnection.open(self.host, self.port)
            except ConnectionRefusedError:
                raise SourceError(f"{self.peer} refused the connection") from None
            except OSError as exc:
                log.debug("cannot connect to %s at %s:%s: %r", self.peer, self.host, self.port, exc)
                raise SourceError(f"{self.peer} is unreachable") from None
            self._link = CtrlLink(conn, self.peer)
            return self._link

    async def _get_all(self, link: CtrlLink, variables: Mapping[K, str]) -> dict[K, CtrlReply]:
        """Pipeline the GETs; the first failure cancels the rest and is raised."""

        async def one(variable: str) -> CtrlReply:
            async with self._slots:
                return await link.get(str(next(self._ids)), variable)

        tasks = {key: asyncio.create_task(one(variable)) for key, variable in variables.items()}
        try:
            done, _ = await asyncio.wait(tasks.values(), return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks.values():
                task.cancel()
        outcomes = await asyncio.gather(*tasks.values(), return_exceptions=True)
        first = next((t.exception() for t in done if not t.cancelled() and t.exception() is not None), None)
        if first is not None:
            raise first
        replies: dict[K, CtrlReply] = {}
        for key, outcome in zip(tasks, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                raise outcome
            replies[key] = outcome
        return replies
