"""Server CPU per lookup request, against the raw ASGI app's, loaded in alternation.

Why: requests per second on this shared 2-core machine swing with the other
processes' load, while the CPU a server process spends per request hardly
does. This starts one ``numlookup serve`` (1 worker, the bench's settings of
``bench/server.py``: SQLite, group commit, access log on) and
``bench/raw_asgi.py``, loads numlookup once for ``--duration`` (a warm-up, not
counted: its ledger writer starts and its caches fill), then loads them in turn
with the same wrk script, body and connections, and reads each server's
user+system CPU from ``/proc/PID/stat`` (its process's and its children's:
numlookup's ledger writer process commits the charges of a worker under load)
before and after every load: CPU per answered request, median and spread over
``--rounds``, and the ratio raw / numlookup (what ``bench/server.py``'s
``lookup/raw`` would be with a core to itself).

Run by hand, never by the test suite (Linux; wrk on PATH)::

    python bench/server_cpu.py [--rounds 5] [--duration 5] [--connections 64] [--access-log on]
                               [--ledger-writer on|off|both]
                               [--profile FILE] [--profile-rate 200]

``--ledger-writer off`` measures the server with its batches committed in the
worker's thread (``NUMLOOKUP_LEDGER_WRITER_PROCESS=false``); ``both`` starts
one server each way and loads them in alternation, and prints their ratio
round by round (the same minute's load on each).

``--profile FILE`` adds one more run of each server, after the rounds and not
counted in them, recorded by py-spy (``--format raw``): numlookup's to FILE,
the raw app's to FILE.raw (its own sampling costs the server CPU, so the
figures come from the rounds only).

Another checkout's server is measured by running that checkout's copy of this
file (the server runs from the checkout the file is in).
"""

from __future__ import annotations

import argparse
import base64
import signal
import statistics
import tempfile
import urllib.request
from pathlib import Path

import server  # bench/server.py: its node, wrk and raw-reference helpers
from live import cpu_seconds, server_cpu, start_profile  # bench/live.py: CPU from /proc, py-spy attached to a server


def load(base: str, pid: int, connections: int, duration: int, authorization: str) -> tuple[float, float]:
    """Microseconds of the server's CPU per answered request over one wrk run: the process's and its children's,
    its main thread's.

    The main thread runs the event loop (every request's own work); the other
    threads are the group commit's and the thread pool's, the child the ledger writer.
    """
    before, main_before = server_cpu(pid), cpu_seconds(pid, pid)
    result = server.run_wrk(base + "/v1/hlr/sync", "lookup", connections, duration, authorization)
    spent, main_spent = server_cpu(pid) - before, cpu_seconds(pid, pid) - main_before
    if result.non200 or not result.ok:
        raise server.BenchError(f"{base}: {result.non200} answers were not 200 ({result.ok} were)")
    return spent / result.ok * 1e6, main_spent / result.ok * 1e6


def mean_charge_batch(base: str) -> float:
    """Charges per group commit so far, from the server's ``numlookup_charge_batch_size`` histogram."""
    with urllib.request.urlopen(base + "/metrics", timeout=10) as response:
        text = response.read().decode()
    figures = {
        name: float(value)
        for name, _, value in (line.partition(" ") for line in text.splitlines())
        if name in ("numlookup_charge_batch_size_sum", "numlookup_charge_batch_size_count")
    }
    count = figures.get("numlookup_charge_batch_size_count", 0.0)
    return figures.get("numlookup_charge_batch_size_sum", 0.0) / count if count else float("nan")


def listening_pid(base: str, marker: bytes) -> int:
    """The pid of the process whose command line holds ``marker`` and the port of ``base``."""
    port = base.rsplit(":", 1)[1].encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if port in command and any(marker in part for part in command):
                return int(entry.name)
    raise server.BenchError(f"no process of {marker.decode()} for {base}")


def main() -> None:
    parser = argparse.ArgumentParser(description="Server CPU per lookup request against the raw ASGI app's.")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--access-log", choices=("on", "off"), default="on")
    parser.add_argument(
        "--ledger-writer",
        choices=("on", "off", "both"),
        default="on",
        help="NUMLOOKUP_LEDGER_WRITER_PROCESS; both: a server with it and one without, loaded in alternation",
    )
    parser.add_argument("--profile", metavar="FILE", help="py-spy record --format raw of one more numlookup run")
    parser.add_argument("--profile-rate", type=int, default=200, help="py-spy's samples a second (--profile)")
    args = parser.parse_args()
    server.require_wrk("bench/server_cpu.py")
    body = server.request_body(server.lua_numbers())
    writers = ["on", "off"] if args.ledger_writer == "both" else [args.ledger_writer]
    names = {w: "numlookup" if len(writers) == 1 else f"numlookup, ledger writer {w}" for w in writers}
    with tempfile.TemporaryDirectory(prefix="numlookup-bench-") as tmp:
        spec = server.RunSpec(
            "sqlite", nodes=1, workers=1, synchronous="FULL", group_commit="on", access_log=args.access_log
        )
        places, authorizations = [], []
        for writer in writers:
            place, _ = server.run_places(Path(tmp) / f"writer-{writer}", spec, "")
            place.env["NUMLOOKUP_LEDGER_WRITER_PROCESS"] = "true" if writer == "on" else "false"
            server.cli_text(place, "db", "upgrade")
            creds = server.cli(place, "accounts", "create", server.ACCOUNT, "--credits", str(server.INITIAL_CREDITS))
            token = base64.b64encode(f"{creds['api_username']}:{creds['api_password']}".encode()).decode()
            places.append(place)
            authorizations.append(f"Basic {token}")
        figures: dict[str, list[float]] = {**{names[w]: [] for w in writers}, "raw ASGI": []}
        main_thread: dict[str, list[float]] = {names[w]: [] for w in writers}  # numlookup's event loop
        batches: dict[str, float] = {}
        with server.running_nodes(places, 1) as bases, server.raw_reference(authorizations[0]) as raw_base:
            pids = []
            for base, authorization in zip(bases, authorizations, strict=True):
                server.preflight(base, authorization, body)
                pids.append(listening_pid(base, b"numlookup"))  # with one worker, serve answers in its own process
            server.preflight(raw_base, authorizations[0], body)
            reference_pid = listening_pid(raw_base, b"raw_asgi.py")
            for base, authorization in zip(bases, authorizations, strict=True):
                # Not counted: a worker starts its ledger writer once it has charged enough (a
                # process's start-up, some 0.7 s of CPU, is not a request's), and its caches fill.
                server.run_wrk(base + "/v1/hlr/sync", "lookup", args.connections, args.duration, authorization)
            for _ in range(args.rounds):
                for writer, base, pid, authorization in zip(writers, bases, pids, authorizations, strict=True):
                    spent, main_spent = load(base, pid, args.connections, args.duration, authorization)
                    figures[names[writer]].append(spent)
                    main_thread[names[writer]].append(main_spent)
                figures["raw ASGI"].append(
                    load(raw_base, reference_pid, args.connections, args.duration, authorizations[0])[0]
                )
            for writer, base in zip(writers, bases, strict=True):
                batches[names[writer]] = mean_charge_batch(base)
            if args.profile:
                for url, pid, path, authorization in (
                    (bases[0], pids[0], args.profile, authorizations[0]),
                    (raw_base, reference_pid, args.profile + ".raw", authorizations[0]),
                ):
                    spy = start_profile(path, pid, args.profile_rate)
                    server.run_wrk(url + "/v1/hlr/sync", "lookup", args.connections, args.duration, authorization)
                    spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                    spy.wait(60)
    print(
        f"server CPU per request, {args.rounds} rounds of {args.duration} s, {args.connections} connections,"
        f" access log {args.access_log} (median, min–max):"
    )
    width = max(len(name) for name in figures)
    for name, values in figures.items():
        print(f"  {name:{width}} {statistics.median(values):7.1f} µs  ({min(values):.1f}–{max(values):.1f})")
    for name, values in main_thread.items():
        print(
            f"  of which {name}'s main thread (its event loop) {statistics.median(values):.1f} µs"
            f"  ({min(values):.1f}–{max(values):.1f})"
        )
    for name, batch in batches.items():
        print(f"  {name}: charges per group commit (mean over the whole run) {batch:.1f}")
    for writer in writers:
        ratios = [r / n for r, n in zip(figures["raw ASGI"], figures[names[writer]], strict=True)]
        print(
            f"  raw / {names[writer]} CPU ratio {statistics.median(ratios):.3f} ({min(ratios):.3f}–{max(ratios):.3f})"
        )
    if len(writers) == 2:
        pairs = [on / off for on, off in zip(figures[names["on"]], figures[names["off"]], strict=True)]
        print(
            f"  ledger writer on / off, CPU per request, round by round: {statistics.median(pairs):.3f}"
            f" ({min(pairs):.3f}–{max(pairs):.3f})"
        )


if __name__ == "__main__":
    main()
