"""Throwaway TCP peers on 127.0.0.1 for the live sources' tests: misbehaving servers and a watching relay.

``against(handler, client)`` runs a client against a server whose every
connection ``handler`` serves (garbage, silence, hang-ups, CCM chatter);
``CtrlRelay`` sits transparently in front of a real osmo-hlr's CTRL port and
counts the GETs in flight, which is what pipelining means on the wire.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Awaitable, Callable
from typing import TypeVar

from numlookup.live import ipa

T = TypeVar("T")


async def against(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    client: Callable[[str, int], Awaitable[T]],
) -> T:
    """Run ``client(host, port)`` against a throwaway TCP server whose connections ``handler`` serves."""
    tasks: set[asyncio.Task[None]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await handler(reader, writer)
        except (asyncio.CancelledError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        return await client("127.0.0.1", port)
    finally:
        for task in tasks:
            task.cancel()
        server.close()
        await server.wait_closed()


class CtrlRelay:
    """A transparent TCP relay in front of osmo-hlr's CTRL port that watches the IPA frames.

    It counts connections and the largest number of GETs sent but not yet
    answered — what pipelining means on the wire.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.connections = 0
        self.outstanding = 0
        self.max_outstanding = 0
        self.server: asyncio.Server | None = None
        self.host = "127.0.0.1"
        self.port = 0
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: list[asyncio.StreamWriter] = []

    @classmethod
    async def start(cls, host: str, port: int) -> CtrlRelay:
        relay = cls((host, port))
        relay.server = await asyncio.start_server(relay._serve, "127.0.0.1", 0)
        relay.port = relay.server.sockets[0].getsockname()[1]
        return relay

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers.append(up_writer)
        upstream = asyncio.create_task(self._pump(reader, up_writer, +1))
        downstream = asyncio.create_task(self._pump(up_reader, writer, -1))
        self.tasks |= {upstream, downstream}
        await asyncio.wait({upstream, downstream}, return_when=asyncio.FIRST_COMPLETED)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, direction: int) -> None:
        try:
            while True:
                header = await reader.readexactly(3)
                (length,) = struct.unpack(">H", header[:2])
                body = await reader.readexactly(length)
                if header[2] == ipa.STREAM_OSMO and body[:1] == bytes((ipa.EXT_CTRL,)):
                    self.outstanding += direction
                    self.max_outstanding = max(self.max_outstanding, self.outstanding)
                writer.write(header + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for writer in self.writers:
            writer.close()
        await asyncio.gather(*(w.wait_closed() for w in self.writers), return_exceptions=True)
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
