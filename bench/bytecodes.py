"""Python bytecodes the event loop runs per ``POST /v1/hlr/sync``, by function: a count, not a time.

Why: on these shared two-core machines one build's CPU per request moves by a
third from run to run (``bench/server_cpu.py``), so a change worth 2 % cannot be
seen in it. The number of bytecodes a request executes does not move: this
drives ``bench/edge.py``'s plain path (the server's protocol on an in-memory
transport, the default settings, request log on) and, for ``--requests``
requests, counts every bytecode the loop's thread executes with
``sys.settrace`` and ``f_trace_opcodes``, by function and by line. Work done in
C (msgspec, SQLite, the socket) is not counted, and a bytecode's cost varies,
so a count ranks the Python work and tells two builds apart; the seconds come
from ``bench/server_cpu.py``. Tracing slows the loop, so a loop turn gathers
more requests than under wrk: the coalescer's and the log's per-turn work are
shared by more of them than they would be.

Run by hand, never by the test suite::

    python bench/bytecodes.py [--requests 200] [--concurrency 16] [--access-log on|off]
                              [--top 30] [--lines 0]

Another checkout is measured by running that checkout's copy of this file.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import edge  # bench/edge.py: the plain path's variant, its app, account and request
import uvloop

ROOT = str(Path(__file__).resolve().parent.parent) + "/"

Key = tuple[str, str]


def where(frame: FrameType) -> Key:
    """The frame's file (the checkout's own without the checkout's folder) and function."""
    code = frame.f_code
    name = code.co_filename
    if name.startswith(ROOT):
        name = name[len(ROOT) :]
    else:
        name = name[name.find("site-packages/") + len("site-packages/") :] if "site-packages/" in name else name
    return name, code.co_name


class Counts:
    """Bytecodes and calls by function, bytecodes by line."""

    def __init__(self) -> None:
        self.ops: collections.Counter[Key] = collections.Counter()
        self.calls: collections.Counter[Key] = collections.Counter()
        self.lines: collections.Counter[tuple[str, str, int]] = collections.Counter()

    def trace(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "call":
            frame.f_trace_opcodes = True
            self.calls[where(frame)] += 1
        elif event == "opcode":
            key = where(frame)
            self.ops[key] += 1
            self.lines[(*key, frame.f_lineno)] += 1
        return self.trace


async def measure(args: argparse.Namespace) -> Counts:
    variant = edge.ProtocolVariant("plain", True, args.access_log == "on")
    edge._quiet()  # the configs set up uvicorn's logging again
    await variant.lifespan.startup()
    try:
        await variant.run(400, args.concurrency)  # warm: caches, the account cache, the first commits
        counts = Counts()
        sys.settrace(counts.trace)
        try:
            await variant.run(args.requests, args.concurrency)
        finally:
            sys.settrace(None)
        return counts
    finally:
        await variant.lifespan.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description="Bytecodes the event loop runs per lookup request, by function.")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--access-log", choices=("on", "off"), default="on")
    parser.add_argument("--top", type=int, default=30, help="functions to list")
    parser.add_argument("--lines", type=int, default=0, help="lines to list")
    args = parser.parse_args()
    counts = uvloop.run(measure(args))
    n = args.requests
    print(f"bytecodes per request on the loop's thread: {sum(counts.ops.values()) / n:.0f}")
    by_file: collections.Counter[str] = collections.Counter()
    for (name, _), ops in counts.ops.items():
        by_file[name] += ops
    print("by file:")
    for name, ops in by_file.most_common(12):
        print(f"  {ops / n:7.0f}  {name}")
    print("by function (bytecodes, calls per request):")
    for (name, function), ops in counts.ops.most_common(args.top):
        print(f"  {ops / n:7.0f}  {counts.calls[(name, function)] / n:5.1f}  {name}:{function}")
    if args.lines:
        print("by line:")
        for (name, function, line), ops in counts.lines.most_common(args.lines):
            print(f"  {ops / n:7.1f}  {name}:{line} {function}")


if __name__ == "__main__":
    main()
