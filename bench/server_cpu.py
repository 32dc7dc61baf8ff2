"""Server CPU per lookup request, against the raw ASGI app's, loaded in alternation.

Why: requests per second on this shared 2-core machine swing with the other
processes' load, while the CPU a server process spends per request hardly
does. This starts one ``numlookup serve`` (1 worker, the bench's settings of
``bench/server.py``: SQLite, group commit, access log on) and
``bench/raw_asgi.py``, loads them in turn with the same wrk script, body and
connections, and reads each server's user+system CPU from ``/proc/PID/stat``
(its process's and its children's: numlookup's ledger writer process commits
the charges of a worker under load) before and after every load: CPU per answered request, median and spread over
``--rounds``, and the ratio raw / numlookup (what ``bench/server.py``'s
``lookup/raw`` would be with a core to itself).

Run by hand, never by the test suite (Linux; wrk on PATH)::

    python bench/server_cpu.py [--rounds 5] [--duration 5] [--connections 64] [--access-log on]
                               [--profile FILE] [--profile-rate 200]

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
    parser.add_argument("--profile", metavar="FILE", help="py-spy record --format raw of one more numlookup run")
    parser.add_argument("--profile-rate", type=int, default=200, help="py-spy's samples a second (--profile)")
    args = parser.parse_args()
    server.require_wrk("bench/server_cpu.py")
    body = server.request_body(server.lua_numbers())
    with tempfile.TemporaryDirectory(prefix="numlookup-bench-") as tmp:
        spec = server.RunSpec(
            "sqlite", nodes=1, workers=1, synchronous="FULL", group_commit="on", access_log=args.access_log
        )
        place, nodes = server.run_places(Path(tmp), spec, "")
        server.cli_text(place, "db", "upgrade")
        creds = server.cli(place, "accounts", "create", server.ACCOUNT, "--credits", str(server.INITIAL_CREDITS))
        token = base64.b64encode(f"{creds['api_username']}:{creds['api_password']}".encode()).decode()
        authorization = f"Basic {token}"
        figures: dict[str, list[float]] = {"numlookup": [], "raw ASGI": []}
        main_thread: list[float] = []  # numlookup's main thread: its event loop
        with server.running_nodes(nodes, 1) as [base], server.raw_reference(authorization) as raw_base:
            server.preflight(base, authorization, body)
            server.preflight(raw_base, authorization, body)
            node_pid = listening_pid(base, b"numlookup")  # with one worker, serve answers in its own process
            reference_pid = listening_pid(raw_base, b"raw_asgi.py")
            for _ in range(args.rounds):
                spent, main_spent = load(base, node_pid, args.connections, args.duration, authorization)
                figures["numlookup"].append(spent)
                main_thread.append(main_spent)
                figures["raw ASGI"].append(
                    load(raw_base, reference_pid, args.connections, args.duration, authorization)[0]
                )
            batch = mean_charge_batch(base)
            if args.profile:
                for url, pid, path in (
                    (base, node_pid, args.profile),
                    (raw_base, reference_pid, args.profile + ".raw"),
                ):
                    spy = start_profile(path, pid, args.profile_rate)
                    server.run_wrk(url + "/v1/hlr/sync", "lookup", args.connections, args.duration, authorization)
                    spy.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
                    spy.wait(60)
    print(
        f"server CPU per request, {args.rounds} rounds of {args.duration} s, {args.connections} connections,"
        f" access log {args.access_log} (median, min–max):"
    )
    for name, values in figures.items():
        print(f"  {name:10} {statistics.median(values):7.1f} µs  ({min(values):.1f}–{max(values):.1f})")
    print(
        f"  of which numlookup's main thread (its event loop) {statistics.median(main_thread):.1f} µs"
        f"  ({min(main_thread):.1f}–{max(main_thread):.1f})"
    )
    print(f"  charges per group commit (mean over the whole run) {batch:.1f}")
    ratios = [r / n for r, n in zip(figures["raw ASGI"], figures["numlookup"], strict=True)]
    print(f"  raw / numlookup CPU ratio {statistics.median(ratios):.3f} ({min(ratios):.3f}–{max(ratios):.3f})")


if __name__ == "__main__":
    main()
