"""The event loop a per-request hot path runs on, asked for once per loop instead of once per call.

Why: on Python 3.11 ``asyncio.get_running_loop`` asks the OS for the process id
(a ``getpid`` system call) every time, and the resolve coalescer and the group
charger each asked for it once per request. A loop running in the thread that
asks is the running loop (a thread runs one at a time), so the loop is kept
with its thread and asked for again only when either changed or it stopped.
"""

from __future__ import annotations

import asyncio
from threading import get_ident


class ThreadLoop:
    """The running loop of the calling thread, remembered from the last call."""

    __slots__ = ("_loop", "_thread")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0

    def get(self) -> asyncio.AbstractEventLoop:
        """``asyncio.get_running_loop()``, without its system call when the loop is the last call's."""
        loop = self._loop
        if loop is None or self._thread != get_ident() or not loop.is_running():
            loop = self._loop = asyncio.get_running_loop()
            self._thread = get_ident()
        return loop
