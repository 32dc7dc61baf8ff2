"""Requests per second of the running server, measured with wrk.

Why: the lookup route does more than answer. It authenticates, resolves ten
numbers and commits a charge plus a ledger row to SQLite before the 200 leaves.
This benchmark says how many such requests a node serves per second with one and
with two worker processes. It also sets that figure against the same server's
``GET /healthz``, which does no authentication, no database work and no lookup,
so the ratio shows what the lookup itself costs. After every lookup run it checks
with the CLI that the balance fell by 0.1 credits for each 200 wrk counted (plus
the few requests still in flight when wrk stopped, each with its own ledger row).

It is run by hand and never by the test suite::

    python bench/server.py [--workers 1 2] [--duration 10] [--connections 64] [--synchronous FULL NORMAL]

It needs ``wrk`` on PATH (Debian/Ubuntu: ``apt-get install wrk``). For each worker
count and each SQLite ``synchronous`` mode it creates a fresh data folder and
account, starts ``numlookup serve`` on a free port of 127.0.0.1, runs
``bench/wrk_lookup.lua`` (2 wrk threads, 10 numbers per request) and then the
``/healthz`` baseline, and stops the server again. wrk runs on the same machine
as the server, so the two compete for the same CPUs.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import phonenumbers

HERE = Path(__file__).resolve().parent
LUA_SCRIPT = HERE / "wrk_lookup.lua"
WRK_THREADS = 2
# wrk leaves answers slower than its timeout (default 2 s) out of the latency figures; keep them in.
WRK_TIMEOUT_S = 30
RESULT_PREFIX = "WRK_RESULT "
ACCOUNT = "bench"
INITIAL_CREDITS = Decimal("10000000")
PRICE = Decimal("0.01")  # the server's default price per valid number, set explicitly below
NUMBERS_PER_REQUEST = 10
SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0

# Talk to 127.0.0.1 directly, whatever http_proxy says.
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class BenchError(Exception):
    """A run that could not be measured; the message says why."""


@dataclass(frozen=True, slots=True)
class WrkResult:
    """The line wrk_lookup.lua's done() prints, parsed."""

    requests: int
    duration_s: float
    ok: int
    non200: int
    socket_errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @classmethod
    def parse(cls, stdout: str) -> WrkResult:
        lines = [line for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
        if len(lines) != 1:
            raise BenchError(f"wrk printed {len(lines)} {RESULT_PREFIX.strip()} lines, expected 1:\n{stdout}")
        data: dict[str, Any] = json.loads(lines[0][len(RESULT_PREFIX):])
        errors: dict[str, int] = data["errors"]
        latency: dict[str, float] = data["latency_us"]
        return cls(
            requests=int(data["requests"]),
            duration_s=int(data["duration_us"]) / 1e6,
            ok=int(data["ok"]),
            non200=int(data["non200"]),
            # "status" is wrk's own count of 4xx/5xx, already in non200.
            socket_errors=sum(int(errors[k]) for k in ("connect", "read", "write", "timeout")),
            p50_ms=float(latency["p50"]) / 1000,
            p99_ms=float(latency["p99"]) / 1000,
        )


@dataclass(frozen=True, slots=True)
class LedgerCheck:
    ok: bool
    message: str
    in_flight: int = 0  # charges wrk never saw the response of

    @property
    def cell(self) -> str:
        if not self.ok:
            return "MISMATCH"
        return f"ok, +{self.in_flight} in flight" if self.in_flight else "exact"


@dataclass(frozen=True, slots=True)
class RunResult:
    workers: int
    synchronous: str
    group_commit: str
    lookup: WrkResult
    healthz: WrkResult
    ledger: LedgerCheck


# ---------------------------------------------------------------- the request body


def lua_numbers() -> list[str]:
    """The numbers wrk_lookup.lua sends, read from its ``NUMBERS`` table."""
    text = LUA_SCRIPT.read_text(encoding="utf-8")
    block = re.search(r"local NUMBERS = \{(.*?)\n\}", text, re.S)
    if block is None:
        raise BenchError(f"no NUMBERS table in {LUA_SCRIPT.name}")
    return re.findall(r'^\s*"(\+\d+)"', block.group(1), re.M)


def check_numbers(numbers: list[str]) -> None:
    """Ten distinct valid mobile numbers, so every request is charged for all ten."""
    if len(numbers) != NUMBERS_PER_REQUEST:
        raise BenchError(f"{LUA_SCRIPT.name} sends {len(numbers)} numbers, expected {NUMBERS_PER_REQUEST}")
    mobile = {phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE}
    seen: set[str] = set()
    for number in numbers:
        parsed = phonenumbers.parse(number)
        if not phonenumbers.is_valid_number(parsed):
            raise BenchError(f"{number} in {LUA_SCRIPT.name} is not a valid number")
        if phonenumbers.number_type(parsed) not in mobile:
            raise BenchError(f"{number} in {LUA_SCRIPT.name} is not a mobile number")
        seen.add(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
    if len(seen) != len(numbers):
        raise BenchError(f"the numbers in {LUA_SCRIPT.name} are not distinct")


def request_body(numbers: list[str]) -> bytes:
    """The exact bytes wrk_lookup.lua posts."""
    return json.dumps({"numbers": numbers}, separators=(",", ":")).encode()


# ---------------------------------------------------------------- the CLI and the server


def child_env(data_dir: Path, synchronous: str, group_commit: str = "on") -> dict[str, str]:
    """This process's environment without any numlookup setting of the caller's, plus the bench's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMLOOKUP_")}
    env.update(
        NUMLOOKUP_DATA_DIR=str(data_dir),
        NUMLOOKUP_SQLITE_SYNCHRONOUS=synchronous,
        NUMLOOKUP_GROUP_COMMIT="true" if group_commit == "on" else "false",
        NUMLOOKUP_MAX_NUMBERS_PER_REQUEST=str(NUMBERS_PER_REQUEST),
        NUMLOOKUP_DEFAULT_PRICE=str(PRICE),
        NUMLOOKUP_LOG_LEVEL="warning",
        NUMLOOKUP_ACCESS_LOG="false",
        NUMLOOKUP_RATE_LIMIT_PER_IP="0",  # all load comes from one address: measure the server, not its limiter
    )
    return env


def cli(env: dict[str, str], *args: str) -> Any:
    """Run ``python -m numlookup ARGS --json`` and return its parsed output."""
    command = [sys.executable, "-m", "numlookup", *args, "--json"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise BenchError(f"`numlookup {' '.join(args)}` failed ({done.returncode}):\n{done.stderr.strip()}")
    return json.loads(done.stdout)


def balance(env: dict[str, str]) -> Decimal:
    return Decimal(cli(env, "credits", "show", ACCOUNT, "--last", "1")["balance"])


def lookup_rows(env: dict[str, str]) -> int:
    rows: list[dict[str, Any]] = cli(env, "credits", "show", ACCOUNT, "--last", str(10**9))["ledger"]
    return sum(1 for row in rows if row["kind"] == "lookup")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def running_server(env: dict[str, str], port: int, workers: int, log_path: Path) -> Iterator[str]:
    """``numlookup serve`` on 127.0.0.1:PORT until the block ends; yields its base URL."""
    command = [
        sys.executable, "-m", "numlookup", "serve",
        "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
    ]
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as log:
        # Its own session: Ctrl-C on the bench does not reach it, the finally below stops it.
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                raise BenchError(f"the server exited with status {proc.returncode} before it was ready:\n{_tail(log_path)}")
            try:
                with _http.open(base + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise BenchError(f"the server was not ready after {READY_TIMEOUT_S:.0f} s:\n{_tail(log_path)}")
            time.sleep(0.2)
        yield base
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM and wait; SIGKILL the server's process group if it does not stop."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        print(f"  server pid {proc.pid} ignored SIGTERM for {STOP_TIMEOUT_S:.0f} s; killing it", file=sys.stderr)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# ---------------------------------------------------------------- one measurement


def preflight(base: str, authorization: str, body: bytes) -> None:
    """One lookup by hand, so a misconfigured run fails loudly instead of timing 4xx answers."""
    request = urllib.request.Request(
        base + "/v1/hlr/sync",
        data=body,
        method="POST",
        headers={"Authorization": authorization, "Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with _http.open(request, timeout=30) as response:
            data = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise BenchError(f"the first lookup got HTTP {exc.code}: {exc.read()[:500]!r}") from None
    invalid = [item["number"] for item in data["result"] if "error" in item]
    if len(data["result"]) != NUMBERS_PER_REQUEST or invalid:
        raise BenchError(f"the server did not accept all {NUMBERS_PER_REQUEST} numbers; invalid: {invalid}")


def run_wrk(url: str, mode: str, connections: int, duration: int, authorization: str | None) -> WrkResult:
    env = dict(os.environ)
    env.pop("BENCH_AUTHORIZATION", None)
    if authorization is not None:
        env["BENCH_AUTHORIZATION"] = authorization
    command = [
        "wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{duration}s", f"--timeout={WRK_TIMEOUT_S}s",
        "-s", str(LUA_SCRIPT), url, "--", mode,
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=duration + 120)
    if done.returncode != 0:
        raise BenchError(f"wrk failed ({done.returncode}):\n{done.stderr.strip()}\n{done.stdout.strip()}")
    return WrkResult.parse(done.stdout)


def _fmt(amount: Decimal) -> str:
    return format(amount.normalize(), "f")


def check_ledger(env: dict[str, str], before: Decimal, result: WrkResult, connections: int) -> LedgerCheck:
    """Is the balance the balance before wrk minus 0.1 for each 200 wrk counted?

    wrk stops on a timer with up to one request in flight per connection; the server
    still answers and charges those, but wrk never counts their responses. So the
    check passes exactly, or with 1..CONNECTIONS extra charges that the ledger rows
    account for one by one; anything else is a mismatch.
    """
    per_request = PRICE * NUMBERS_PER_REQUEST
    # Requests in flight when wrk stopped may still be committing: wait for a stable balance.
    after = balance(env)
    for _ in range(20):
        time.sleep(0.5)
        again = balance(env)
        if again == after:
            break
        after = again
    expected = before - per_request * result.ok
    rows = lookup_rows(env) - 1  # minus the preflight lookup
    charged = (before - after) / per_request
    equation = f"balance {_fmt(after)} vs {_fmt(before)} - {_fmt(per_request)} x {result.ok} responses 200 = {_fmt(expected)}"
    if after == expected and rows == result.ok:
        return LedgerCheck(True, f"exact: {equation}; {rows} lookup rows in the ledger")
    in_flight = charged - result.ok
    if charged == charged.to_integral_value() and rows == charged and 0 < in_flight <= connections:
        return LedgerCheck(
            True,
            f"consistent, {_fmt(in_flight)} in flight: {equation}; the server charged {rows} requests"
            f" ({rows} lookup rows), {_fmt(in_flight)} more than wrk counted: the requests still in flight"
            f" when wrk's time ran out (at most one per connection, {connections})",
            int(in_flight),
        )
    return LedgerCheck(
        False,
        f"MISMATCH: {equation}; the balance fell by {_fmt(before - after)} ({_fmt(charged)} requests), "
        f"the ledger has {rows} lookup rows, wrk counted {result.ok} responses 200",
    )


def measure(workers: int, synchronous: str, group_commit: str, connections: int, duration: int, body: bytes) -> RunResult:
    label = f"{workers} worker{'s' if workers > 1 else ''}, synchronous={synchronous}, group commit {group_commit}"
    print(f"== {label}", flush=True)
    with tempfile.TemporaryDirectory(prefix="numlookup-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        env = child_env(data_dir, synchronous, group_commit)
        creds = cli(env, "accounts", "create", ACCOUNT, "--credits", str(INITIAL_CREDITS))
        token = base64.b64encode(f"{creds['api_username']}:{creds['api_password']}".encode()).decode()
        authorization = f"Basic {token}"
        port = free_port()
        with running_server(env, port, workers, Path(tmp) / "server.log") as base:
            preflight(base, authorization, body)
            before = balance(env)
            if before != INITIAL_CREDITS - PRICE * NUMBERS_PER_REQUEST:
                raise BenchError(f"the first lookup left the balance at {before}, expected a charge of {PRICE * NUMBERS_PER_REQUEST}")

            print(f"  POST /v1/hlr/sync for {duration} s ...", flush=True)
            lookup = run_wrk(base + "/v1/hlr/sync", "lookup", connections, duration, authorization)
            ledger = check_ledger(env, before, lookup, connections)
            print(f"  ledger check: {ledger.message}", flush=True)

            print(f"  GET /healthz (baseline) for {duration} s ...", flush=True)
            healthz = run_wrk(base + "/healthz", "healthz", connections, duration, None)
    return RunResult(workers, synchronous, group_commit, lookup, healthz, ledger)


# ---------------------------------------------------------------- output


def print_table(results: list[RunResult]) -> None:
    header = (
        "workers", "synchronous", "group commit", "lookup req/s", "numbers/s", "p50 ms", "p99 ms",
        "non-200", "sock err", "/healthz req/s", "lookup/healthz", "ledger",
    )
    rows = [
        (
            str(r.workers),
            r.synchronous,
            r.group_commit,
            f"{r.lookup.rps:,.0f}",
            f"{r.lookup.rps * NUMBERS_PER_REQUEST:,.0f}",
            f"{r.lookup.p50_ms:.2f}",
            f"{r.lookup.p99_ms:.2f}",
            str(r.lookup.non200),
            str(r.lookup.socket_errors),
            f"{r.healthz.rps:,.0f}",
            f"{r.lookup.rps / r.healthz.rps:.3f}" if r.healthz.rps else "-",
            r.ledger.cell,
        )
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    line = "  ".join(h.rjust(w) for h, w in zip(header, widths))
    print(line)
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths)))


def wrk_version() -> str:
    done = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    return (done.stdout or done.stderr).splitlines()[0].strip() if (done.stdout or done.stderr) else "wrk"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Requests per second of numlookup serve, measured with wrk.")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to measure (default: 1 2)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default: 10)")
    parser.add_argument("--connections", type=int, default=64, help="open connections (default: 64)")
    parser.add_argument(
        "--group-commit", nargs="+", default=["on", "off"], choices=["on", "off"],
        help="measure with the charges of concurrent requests committed together, one by one, or both (default)",
    )
    parser.add_argument(
        "--synchronous", nargs="+", default=["FULL"], choices=SYNCHRONOUS_MODES, type=str.upper,
        help="SQLite synchronous modes to measure (default: FULL)",
    )
    args = parser.parse_args(argv)
    if any(w < 1 for w in args.workers):
        parser.error("--workers must be at least 1")
    if args.duration < 1:
        parser.error("--duration must be at least 1")
    if args.connections < WRK_THREADS:
        parser.error(f"--connections must be at least {WRK_THREADS} (one per wrk thread)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        print(
            "bench/server.py needs wrk, the HTTP benchmarking tool, and it is not on PATH.\n"
            "Install it:  Debian/Ubuntu: sudo apt-get install wrk   macOS: brew install wrk\n"
            "or build it from https://github.com/wg/wrk and put it on PATH.",
            file=sys.stderr,
        )
        return 2
    numbers = lua_numbers()
    check_numbers(numbers)
    body = request_body(numbers)

    cpus = os.cpu_count() or 1
    print(
        f"{wrk_version()}; {WRK_THREADS} wrk threads, {args.connections} connections, {args.duration} s per run, "
        f"timeout {WRK_TIMEOUT_S} s, {NUMBERS_PER_REQUEST} numbers per request"
    )
    print(
        f"This machine has {cpus} CPU{'s' if cpus > 1 else ''}: wrk and the server share them, "
        "so the figures are lower than on a server with its own cores."
    )
    results: list[RunResult] = []
    failures: list[str] = []
    for workers in args.workers:
        for synchronous in args.synchronous:
            for group_commit in args.group_commit:
                try:
                    results.append(measure(workers, synchronous, group_commit, args.connections, args.duration, body))
                except (BenchError, subprocess.TimeoutExpired) as exc:
                    failures.append(f"{workers} worker(s), synchronous={synchronous}, group commit {group_commit}: {exc}")
                    print(f"  FAILED: {exc}", file=sys.stderr, flush=True)

    print()
    if results:
        print_table(results)
        print()
        print(
            "Baseline: /healthz req/s is the same server's GET /healthz route (no auth, no database, no lookup),\n"
            "measured right after the lookup run; lookup/healthz = lookup req/s / /healthz req/s.\n"
            f"numbers/s = {NUMBERS_PER_REQUEST} x lookup req/s; p50/p99 are wrk's latencies of POST /v1/hlr/sync;\n"
            "non-200 = lookup responses other than 200; sock err = wrk's connect/read/write errors and timeouts"
            f" (answers slower than {WRK_TIMEOUT_S} s).\n"
            f"ledger: exact = balance == balance before - {_fmt(PRICE * NUMBERS_PER_REQUEST)} x responses 200;"
            " +N in flight = N more charges, each a ledger row,\n"
            "for requests the server answered after wrk stopped counting (at most one per connection).\n"
            f"wrk ({WRK_THREADS} threads) and the server ran on the same {cpus} CPU{'s' if cpus > 1 else ''}."
        )
    for r in results:
        issues = []
        if r.lookup.non200 or r.lookup.socket_errors:
            issues.append(f"lookup: {r.lookup.non200} non-200, {r.lookup.socket_errors} socket errors")
        if r.healthz.non200 or r.healthz.socket_errors:
            issues.append(f"/healthz: {r.healthz.non200} non-200, {r.healthz.socket_errors} socket errors")
        if not r.ledger.ok:
            issues.append(f"ledger {r.ledger.message}")
        for issue in issues:
            print(f"warning: {r.workers} worker(s), synchronous={r.synchronous}: {issue}")
    for failure in failures:
        print(f"failed: {failure}")
    return 1 if failures or any(not r.ledger.ok for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
