"""Server CPU per lookup request split by thread: the event loop's, and each other thread's.

Why: ``bench/server_cpu.py`` tells the main thread (the event loop) from the
rest; this tells the rest apart. Each thread's user+system CPU is read from
``/proc/PID/task/TID/stat`` before and after a wrk load; a thread's name comes
from ``py-spy dump`` once, after the rounds (Python 3.11 gives the OS no
thread names). The group commit's thread is ``numlookup-charges``; anyio's
pool threads (the usage rollup's fold among others) are ``AnyIO worker thread``.
The worker's child processes count too, each thread of theirs a line: the
ledger writer (``billing.ledger_writer``, which commits the batches of a
worker under load) is ``ledger writer``, and "whole server" is the worker
and its children.

Run by hand, never by the test suite (Linux; wrk on PATH; py-spy for names)::

    python bench/server_threads.py [--rounds 3] [--duration 5] [--connections 64]

Another checkout's server is measured by running that checkout's copy of this
file (the server runs from the checkout the file is in).
"""

from __future__ import annotations

import argparse
import base64
import re
import statistics
import subprocess
import tempfile
from pathlib import Path

import server  # bench/server.py: its node and wrk helpers
from live import cpu_seconds, py_spy, server_cpu  # bench/live.py: CPU from /proc, and which py-spy
from server_cpu import listening_pid, mean_charge_batch


def processes(pid: int) -> list[int]:
    """``pid`` and its descendants (the worker's ledger writer among them)."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(child) for child in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def threads(pid: int) -> dict[int, float]:
    """CPU seconds of each thread of the process and of its descendants, by thread id."""
    spent: dict[int, float] = {}
    for process in processes(pid):
        try:
            for task in Path(f"/proc/{process}/task").iterdir():
                spent[int(task.name)] = cpu_seconds(process, int(task.name))
        except (FileNotFoundError, ProcessLookupError):
            continue  # a thread (or a process) that ended meanwhile
    return spent


def child_names(pid: int) -> dict[int, str]:
    """The main thread of each descendant process → what it is (the ledger writer, or its command)."""
    named: dict[int, str] = {}
    for process in processes(pid)[1:]:
        try:
            command = (Path(f"/proc/{process}/cmdline")).read_bytes().split(b"\0")
        except (FileNotFoundError, ProcessLookupError):
            continue
        words = [part.decode(errors="replace") for part in command if part]
        named[process] = "ledger writer" if "numlookup.billing.ledger_writer" in words else " ".join(words[1:3])
    return named


def switches(pid: int) -> dict[int, int]:
    """Context switches (voluntary and not) of each of the process's threads, by thread id.

    A thread that waits for the GIL sleeps on a futex and is switched out: the
    count is how often the threads handed the GIL (or work) to each other.
    """
    counted: dict[int, int] = {}
    for process in processes(pid):
        try:
            tasks = list(Path(f"/proc/{process}/task").iterdir())
        except (FileNotFoundError, ProcessLookupError):
            continue
        for task in tasks:
            try:
                status = (task / "status").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            counted[int(task.name)] = sum(
                int(line.split()[1]) for line in status.splitlines() if line.split(":")[0].endswith("ctxt_switches")
            )
    return counted


def names(pid: int) -> dict[int, str]:
    """Thread id → Python thread name, from ``py-spy dump`` (empty without py-spy)."""
    spy = py_spy()
    if spy is None:
        return {}
    try:
        text = subprocess.run([spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    found: dict[int, str] = {}
    for match in re.finditer(r'^Thread (\d+) \([^)]*\): "([^"]*)"', text, re.MULTILINE):
        found[int(match.group(1))] = match.group(2)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description="Server CPU per lookup request, by thread.")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    args = parser.parse_args()
    server.require_wrk("bench/server_threads.py")
    body = server.request_body(server.lua_numbers())
    with tempfile.TemporaryDirectory(prefix="numlookup-bench-") as tmp:
        spec = server.RunSpec("sqlite", nodes=1, workers=1, synchronous="FULL", group_commit="on")
        place, nodes = server.run_places(Path(tmp), spec, "")
        server.cli_text(place, "db", "upgrade")
        creds = server.cli(place, "accounts", "create", server.ACCOUNT, "--credits", str(server.INITIAL_CREDITS))
        token = base64.b64encode(f"{creds['api_username']}:{creds['api_password']}".encode()).decode()
        authorization = f"Basic {token}"
        per_thread: dict[int, list[float]] = {}
        switched: dict[int, list[float]] = {}
        totals: list[float] = []
        with server.running_nodes(nodes, 1) as [base]:
            server.preflight(base, authorization, body)
            pid = listening_pid(base, b"numlookup")
            for _ in range(args.rounds):
                before, total_before, switched_before = threads(pid), server_cpu(pid), switches(pid)
                result = server.run_wrk(base + "/v1/hlr/sync", "lookup", args.connections, args.duration, authorization)
                after, total, switched_after = threads(pid), server_cpu(pid) - total_before, switches(pid)
                if result.non200 or not result.ok:
                    raise server.BenchError(f"{result.non200} answers were not 200 ({result.ok} were)")
                totals.append(total / result.ok * 1e6)
                for tid, seconds in after.items():
                    per_thread.setdefault(tid, []).append((seconds - before.get(tid, 0.0)) / result.ok * 1e6)
                for tid, count in switched_after.items():
                    switched.setdefault(tid, []).append((count - switched_before.get(tid, 0)) / result.ok)
            batch = mean_charge_batch(base)
            named = names(pid) | child_names(pid)
    print(f"server CPU per request by thread, {args.rounds} rounds of {args.duration} s (median, min–max):")
    print(f"  {'whole server':28} {statistics.median(totals):7.1f} µs  ({min(totals):.1f}–{max(totals):.1f})")
    for tid, values in sorted(per_thread.items(), key=lambda item: -statistics.median(item[1])):
        if max(values) < 0.5:
            continue
        label = "main (event loop)" if tid == pid else named.get(tid, "?")
        turns = switched.get(tid, [0.0])
        print(
            f"  {tid:>7} {label:20} {statistics.median(values):7.1f} µs  ({min(values):.1f}–{max(values):.1f})"
            f"   context switches {statistics.median(turns):5.2f} a request"
        )
    print(f"  charges per group commit (mean over the whole run) {batch:.1f}")


if __name__ == "__main__":
    main()
