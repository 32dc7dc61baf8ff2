"""Requests per second of the running server, measured with wrk.

Why: the lookup route does more than answer. It authenticates, resolves ten
numbers and commits a charge plus a ledger row to the database before the 200
leaves. This benchmark says how many such requests per second one node, or
several nodes sharing one database, serve on SQLite and on PostgreSQL, with the
charges of concurrent requests committed together (group commit) or one by one.
It also sets that figure against the same server's ``GET /healthz``, which does
no authentication, no database work and no lookup, so the ratio shows what the
lookup itself costs. After every lookup run it checks with the CLI that the
balance fell by 0.1 credits for each 200 wrk counted (plus the few requests still
in flight when wrk stopped, each with its own ledger row).

It is run by hand and never by the test suite::

    python bench/server.py [--database sqlite postgresql] [--nodes 1 3] [--workers 1 2]
                           [--group-commit on off] [--synchronous FULL NORMAL]
                           [--duration 10] [--connections 64]

It needs ``wrk`` on PATH (Debian/Ubuntu: ``apt-get install wrk``), and for
``--database postgresql`` the PostgreSQL server binaries (initdb, pg_ctl). Every
combination of the options is one run: a fresh data folder, database and
account, N ``numlookup serve`` nodes on free ports of 127.0.0.1 sharing that
database, ``bench/wrk_lookup.lua`` (10 numbers per request) against them, then
the ``/healthz`` baseline on node 1, and the nodes are stopped again.
``--synchronous`` is SQLite's ``PRAGMA synchronous``; PostgreSQL runs ignore it.

PostgreSQL is one throwaway cluster for the whole bench (``tests/pg.py``) with a
fresh database per run, upgraded with ``numlookup db upgrade`` before the nodes
start; unlike the test suite's cluster it keeps ``fsync`` on, as SQLite's FULL
does. On SQLite the nodes share one database file (one data folder).

One node gets one wrk process with 2 threads and all connections. N nodes get N
wrk processes at the same time, one per node, each with 1 thread and
connections // N connections: their requests and responses are summed, the
p99 is the largest of their p99s and the p50 their request-weighted mean.

wrk, the nodes and PostgreSQL all run on this one machine and compete for the
same CPUs: more nodes on one machine measure contention for those CPUs and for
the one database, not how the service scales out over machines.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
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
from typing import TYPE_CHECKING, Any

import phonenumbers

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # the test harness: servers, the CLI, a throwaway PostgreSQL cluster

from tests import support  # noqa: E402  # importable once ROOT is on the path

if TYPE_CHECKING:
    from tests.pg import PostgresCluster

LUA_SCRIPT = HERE / "wrk_lookup.lua"
WRK_THREADS = 2  # one node: one wrk process with this many threads
# wrk leaves answers slower than its timeout (default 2 s) out of the latency figures; keep them in.
WRK_TIMEOUT_S = 30
RESULT_PREFIX = "WRK_RESULT "
ACCOUNT = "bench"
INITIAL_CREDITS = Decimal("10000000")
PRICE = Decimal("0.01")  # the server's default price per valid number, set explicitly below
NUMBERS_PER_REQUEST = 10
DATABASES = ("sqlite", "postgresql")
SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
NOT_SQLITE = "-"  # the synchronous cell of a PostgreSQL run
READY_TIMEOUT_S = 60.0

# Talk to 127.0.0.1 directly, whatever http_proxy says.
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class BenchError(Exception):
    """A run that could not be measured; the message says why."""


@dataclass(frozen=True, slots=True)
class WrkResult:
    """The line wrk_lookup.lua's done() prints, parsed; or several such lines combined."""

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
        data: dict[str, Any] = json.loads(lines[0][len(RESULT_PREFIX) :])
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

    @classmethod
    def combine(cls, parts: list[WrkResult]) -> WrkResult:
        """The wrk processes that loaded the nodes at the same time, as one load.

        Counts add up. The duration is the longest one, so req/s is the summed
        requests over the time all of them took. wrk reports percentiles, not its
        histogram, so the exact percentiles of the whole are lost: the p99 is the
        worst of the p99s (an upper bound) and the p50 the mean of the p50s
        weighted by each process's requests (an estimate).
        """
        if len(parts) == 1:
            return parts[0]
        requests = sum(p.requests for p in parts)
        return cls(
            requests=requests,
            duration_s=max(p.duration_s for p in parts),
            ok=sum(p.ok for p in parts),
            non200=sum(p.non200 for p in parts),
            socket_errors=sum(p.socket_errors for p in parts),
            p50_ms=sum(p.p50_ms * p.requests for p in parts) / requests if requests else 0.0,
            p99_ms=max(p.p99_ms for p in parts),
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
class RunSpec:
    """One cell of the matrix the options span."""

    database: str  # "sqlite" or "postgresql"
    nodes: int
    workers: int
    synchronous: str  # SQLite's PRAGMA synchronous; NOT_SQLITE on PostgreSQL
    group_commit: str  # "on" or "off"
    access_log: str = "on"  # the request log, one line per request (the default), or "off"

    @property
    def label(self) -> str:
        durability = f"synchronous={self.synchronous}" if self.database == "sqlite" else "fsync=on"
        return (
            f"{self.database}, {self.nodes} node{'s' if self.nodes > 1 else ''}, "
            f"{self.workers} worker{'s' if self.workers > 1 else ''} per node, {durability}, "
            f"group commit {self.group_commit}, access log {self.access_log}"
        )


@dataclass(frozen=True, slots=True)
class RunResult:
    spec: RunSpec
    lookup: WrkResult
    healthz: WrkResult
    raw: WrkResult  # bench/raw_asgi.py, the same load, right after
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


# ---------------------------------------------------------------- PostgreSQL


def start_postgres() -> PostgresCluster:
    """tests/pg.py's throwaway cluster, started with PostgreSQL's default durability.

    The test suite's cluster runs with ``fsync=off`` because its tests never kill
    PostgreSQL; a benchmark that compares against SQLite's ``synchronous=FULL``
    must pay for its commits reaching the disk, so this one keeps fsync on. The
    import is here, not at the top, so SQLite-only runs need no psycopg.
    """
    from tests.pg import PostgresCluster

    class DurableCluster(PostgresCluster):
        def start(self) -> DurableCluster:
            # PostgresCluster.start() without -F (fsync=off); the other options as in the suite.
            self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8")
            options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -c max_connections=300 -c shared_buffers=64MB"
            self._run(
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.data),
                "-o",
                options,
                "-l",
                str(self.root / "log"),
                "-w",
                "start",
            )
            return self

    cluster = DurableCluster()
    try:
        return cluster.start()
    except BaseException:
        cluster.stop()
        raise


def postgres_settings(cluster: PostgresCluster) -> str:
    """What the cluster actually runs with, read back from it for the report."""
    import psycopg

    names = ("server_version", "fsync", "synchronous_commit", "shared_buffers", "max_connections")
    with psycopg.connect(f"host=127.0.0.1 port={cluster.port} user=postgres dbname=postgres") as conn:
        values = [row[0] for name in names if (row := conn.execute(f"SHOW {name}").fetchone()) is not None]
    return ", ".join(f"{name}={value}" for name, value in zip(names, values, strict=True))


# ---------------------------------------------------------------- the CLI and the server


@dataclass(frozen=True, slots=True)
class Place:
    """Where a process of the run works: its data folder and the bench's settings for it."""

    data_dir: Path
    env: dict[str, str]


def bench_settings(
    synchronous: str, group_commit: str = "on", database_url: str = "", access_log: str = "on"
) -> dict[str, str]:
    """The bench's settings for the CLI and every node (``tests.support`` adds the data folder).

    Everything else is the default a new user gets: the request log at ``info`` (a JSON line
    per request, to the server's log file), metrics on. With a ``database_url`` the data folder
    holds only the node's own files and the database is that URL's; without one it is the
    SQLite file in the data folder.
    """
    env = {
        "NUMLOOKUP_GROUP_COMMIT": "true" if group_commit == "on" else "false",
        "NUMLOOKUP_MAX_NUMBERS_PER_REQUEST": str(NUMBERS_PER_REQUEST),
        "NUMLOOKUP_DEFAULT_PRICE": str(PRICE),
        "NUMLOOKUP_ACCESS_LOG": "true" if access_log == "on" else "false",
        "NUMLOOKUP_RATE_LIMIT_PER_IP": "0",  # all load comes from one address: measure the server, not its limiter
    }
    if database_url:
        env["NUMLOOKUP_DATABASE_URL"] = database_url
    else:
        env["NUMLOOKUP_SQLITE_SYNCHRONOUS"] = synchronous
    return env


def run_places(tmp: Path, spec: RunSpec, database_url: str) -> tuple[Place, list[Place]]:
    """The CLI's place and each node's.

    SQLite: every node and the CLI use one data folder, so they share its one
    database file. PostgreSQL: each node gets a data folder of its own, as on
    machines of their own, and all of them the same database URL.
    """
    env = bench_settings(spec.synchronous, spec.group_commit, database_url, spec.access_log)
    if spec.database == "sqlite":
        place = Place(tmp / "data", env)
        return place, [place] * spec.nodes
    return Place(tmp / "cli", env), [Place(tmp / f"node{i}", env) for i in range(1, spec.nodes + 1)]


def cli_text(place: Place, *args: str) -> str:
    """Run ``python -m numlookup ARGS`` and return what it printed."""
    done = support.run_cli(place.data_dir, *args, env=place.env, check=False)
    if done.returncode != 0:
        raise BenchError(f"`numlookup {' '.join(args)}` failed ({done.returncode}):\n{done.stderr.strip()}")
    return done.stdout


def cli(place: Place, *args: str) -> Any:
    """Run ``python -m numlookup ARGS --json`` and return its parsed output."""
    return json.loads(cli_text(place, *args, "--json"))


def balance(place: Place) -> Decimal:
    return Decimal(cli(place, "credits", "show", ACCOUNT, "--last", "1")["balance"])


def lookup_rows(place: Place) -> int:
    rows: list[dict[str, Any]] = cli(place, "credits", "show", ACCOUNT, "--last", str(10**9))["ledger"]
    return sum(1 for row in rows if row["kind"] == "lookup")


@contextlib.contextmanager
def running_nodes(places: list[Place], workers: int) -> Iterator[list[str]]:
    """One ``numlookup serve`` per place (the test suite's ``Server``), each on a free port; yields their URLs.

    They start one after the other, so no two of them migrate or open the
    database at the same moment; all of them are stopped when the block ends.
    """
    servers: list[support.Server] = []
    try:
        for place in places:
            server = support.Server(place.data_dir, workers=workers, env=place.env)
            try:
                servers.append(server.start(timeout=READY_TIMEOUT_S))
            except AssertionError as exc:  # the harness's way of saying the server did not come up
                raise BenchError(str(exc)) from None
        yield [server.url for server in servers]
    finally:
        for server in servers:
            server.stop()


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


def start_wrk(
    url: str, mode: str, threads: int, connections: int, duration: int, authorization: str | None
) -> subprocess.Popen[str]:
    """wrk with wrk_lookup.lua in the background; ``finish_wrk`` collects its result."""
    env = dict(os.environ)
    env.pop("BENCH_AUTHORIZATION", None)
    if authorization is not None:
        env["BENCH_AUTHORIZATION"] = authorization
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration}s",
        f"--timeout={WRK_TIMEOUT_S}s",
        "-s",
        str(LUA_SCRIPT),
        url,
        "--",
        mode,
    ]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_wrk(proc: subprocess.Popen[str], duration: int) -> WrkResult:
    """Wait for a ``start_wrk`` process and parse its result line."""
    try:
        stdout, stderr = proc.communicate(timeout=duration + 120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    if proc.returncode != 0:
        raise BenchError(f"wrk failed ({proc.returncode}):\n{stderr.strip()}\n{stdout.strip()}")
    return WrkResult.parse(stdout)


def run_wrk(url: str, mode: str, connections: int, duration: int, authorization: str | None) -> WrkResult:
    """One wrk process, WRK_THREADS threads, against one node."""
    return finish_wrk(start_wrk(url, mode, WRK_THREADS, connections, duration, authorization), duration)


def wrk_connections(connections: int, nodes: int) -> int:
    """The connections the load opens: all of them for one node, connections // N per node for N."""
    return connections if nodes == 1 else connections // nodes * nodes


def load_nodes(bases: list[str], path: str, connections: int, duration: int, authorization: str) -> WrkResult:
    """POST the lookup to every node at once: one wrk process per node, summed.

    One node keeps the single wrk process with WRK_THREADS threads. For N nodes
    each wrk has 1 thread and connections // N connections, so N processes do
    not ask for more threads than there are cores to share with the servers.
    """
    if len(bases) == 1:
        return run_wrk(bases[0] + path, "lookup", connections, duration, authorization)
    per_node = connections // len(bases)
    procs: list[subprocess.Popen[str]] = []
    try:
        for base in bases:
            procs.append(start_wrk(base + path, "lookup", 1, per_node, duration, authorization))
        return WrkResult.combine([finish_wrk(proc, duration) for proc in procs])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def _fmt(amount: Decimal) -> str:
    return format(amount.normalize(), "f")


def check_ledger(
    place: Place, before: Decimal, result: WrkResult, connections: int, preflights: int = 1
) -> LedgerCheck:
    """Is the balance the balance before wrk minus 0.1 for each 200 wrk counted?

    wrk stops on a timer with up to one request in flight per connection; the server
    still answers and charges those, but wrk never counts their responses. So the
    check passes exactly, or with 1..CONNECTIONS extra charges that the ledger rows
    account for one by one; anything else is a mismatch. ``connections`` is the
    count over all wrk processes; ``preflights`` the lookups sent by hand before
    ``before`` was read, one per node, which have ledger rows of their own.
    """
    per_request = PRICE * NUMBERS_PER_REQUEST
    # Requests in flight when wrk stopped may still be committing: wait for a stable balance.
    after = balance(place)
    for _ in range(20):
        time.sleep(0.5)
        again = balance(place)
        if again == after:
            break
        after = again
    expected = before - per_request * result.ok
    rows = lookup_rows(place) - preflights
    charged = (before - after) / per_request
    equation = (
        f"balance {_fmt(after)} vs {_fmt(before)} - {_fmt(per_request)} x {result.ok} responses 200 = {_fmt(expected)}"
    )
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


def measure(spec: RunSpec, cluster: PostgresCluster | None, connections: int, duration: int, body: bytes) -> RunResult:
    print(f"== {spec.label}", flush=True)
    with tempfile.TemporaryDirectory(prefix="numlookup-bench-") as tmp:
        database_url = ""
        if spec.database == "postgresql":
            assert cluster is not None
            database_url = cluster.create_database()
        place, node_places = run_places(Path(tmp), spec, database_url)
        # Admin commands create no database, and serve does not migrate PostgreSQL: upgrade it as an
        # operator would, before the first account and before any node starts.
        cli_text(place, "db", "upgrade")
        creds = cli(place, "accounts", "create", ACCOUNT, "--credits", str(INITIAL_CREDITS))
        token = base64.b64encode(f"{creds['api_username']}:{creds['api_password']}".encode()).decode()
        authorization = f"Basic {token}"
        with running_nodes(node_places, spec.workers) as bases:
            for base in bases:
                preflight(base, authorization, body)
            before = balance(place)
            if before != INITIAL_CREDITS - PRICE * NUMBERS_PER_REQUEST * len(bases):
                raise BenchError(
                    f"the first lookup on each of {len(bases)} node(s) left the balance at {before},"
                    f" expected a charge of {PRICE * NUMBERS_PER_REQUEST} each"
                )

            total = wrk_connections(connections, spec.nodes)
            print(f"  POST /v1/hlr/sync for {duration} s on {spec.nodes} node(s), {total} connections ...", flush=True)
            lookup = load_nodes(bases, "/v1/hlr/sync", connections, duration, authorization)
            ledger = check_ledger(place, before, lookup, total, preflights=len(bases))
            print(f"  ledger check: {ledger.message}", flush=True)

            print(f"  GET /healthz (baseline) on node 1 for {duration} s ...", flush=True)
            healthz = run_wrk(bases[0] + "/healthz", "healthz", connections, duration, None)
        print(f"  the raw ASGI reference (bench/raw_asgi.py), same body and load, for {duration} s ...", flush=True)
        with raw_reference(authorization) as raw_base:
            preflight(raw_base, authorization, body)
            raw = load_nodes([raw_base], "/v1/hlr/sync", connections, duration, authorization)
    return RunResult(spec, lookup, healthz, raw, ledger)


@contextlib.contextmanager
def raw_reference(authorization: str) -> Iterator[str]:
    """``bench/raw_asgi.py`` on uvicorn, one worker, on a free port; yields its URL.

    The credentials go through the environment (``BENCH_AUTHORIZATION``), as to wrk.
    """
    port = support.free_port()
    env = {**os.environ, "BENCH_AUTHORIZATION": authorization}
    process = subprocess.Popen(
        [sys.executable, str(HERE / "raw_asgi.py"), "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        if not support.until_healthy(
            base, process, READY_TIMEOUT_S, lambda: process.stderr.read() if process.stderr else ""
        ):
            raise BenchError(f"bench/raw_asgi.py did not answer within {READY_TIMEOUT_S} s")
        yield base
    finally:
        process.terminate()
        try:
            process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def run_specs(args: argparse.Namespace) -> list[RunSpec]:
    """Every combination of the options; PostgreSQL runs once per cell, not once per SQLite mode."""
    specs: list[RunSpec] = []
    for database in args.database:
        for nodes in args.nodes:
            for workers in args.workers:
                for synchronous in args.synchronous if database == "sqlite" else [NOT_SQLITE]:
                    for group_commit in args.group_commit:
                        for access_log in args.access_log:
                            specs.append(RunSpec(database, nodes, workers, synchronous, group_commit, access_log))
    return specs


# ---------------------------------------------------------------- output


def print_table(results: list[RunResult]) -> None:
    header = (
        "database",
        "nodes",
        "workers",
        "synchronous",
        "group commit",
        "access log",
        "lookup req/s",
        "numbers/s",
        "p50 ms",
        "p99 ms",
        "non-200",
        "sock err",
        "/healthz req/s",
        "lookup/healthz",
        "raw ASGI req/s",
        "lookup/raw",
        "ledger",
    )
    rows = [
        (
            r.spec.database,
            str(r.spec.nodes),
            str(r.spec.workers),
            r.spec.synchronous,
            r.spec.group_commit,
            r.spec.access_log,
            f"{r.lookup.rps:,.0f}",
            f"{r.lookup.rps * NUMBERS_PER_REQUEST:,.0f}",
            f"{r.lookup.p50_ms:.2f}",
            f"{r.lookup.p99_ms:.2f}",
            str(r.lookup.non200),
            str(r.lookup.socket_errors),
            f"{r.healthz.rps:,.0f}",
            f"{r.lookup.rps / r.healthz.rps:.3f}" if r.healthz.rps else "-",
            f"{r.raw.rps:,.0f}",
            f"{r.lookup.rps / r.raw.rps:.3f}" if r.raw.rps else "-",
            r.ledger.cell,
        )
        for r in results
    ]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    line = "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))
    print(line)
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))


def print_notes(results: list[RunResult], cpus: int) -> None:
    """What the columns mean, under the table."""
    cores = f"{cpus} CPU{'s' if cpus > 1 else ''}"
    print(
        "Baseline: /healthz req/s is GET /healthz (no auth, no database, no lookup) on node 1 only,\n"
        f"one wrk process with {WRK_THREADS} threads and all connections, measured right after the lookup run\n"
        "(with several nodes the others idle);\n"
        "lookup/healthz = lookup req/s / /healthz req/s;\n"
        "raw ASGI req/s is bench/raw_asgi.py (Basic auth, msgspec decode and encode of the same body and\n"
        "a response of the same shape; no framework, no database) on uvicorn, 1 worker, the same wrk load,\n"
        "measured right after the node stopped; lookup/raw = lookup req/s / raw ASGI req/s;\n"
        "with several nodes: all nodes' lookups against one node's /healthz.\n"
        f"numbers/s = {NUMBERS_PER_REQUEST} x lookup req/s; p50/p99 are wrk's latencies of POST /v1/hlr/sync;\n"
        "non-200 = lookup responses other than 200; sock err = wrk's connect/read/write errors and timeouts"
        f" (answers slower than {WRK_TIMEOUT_S} s).\n"
        f"ledger: exact = balance == balance before - {_fmt(PRICE * NUMBERS_PER_REQUEST)} x responses 200;"
        " +N in flight = N more charges, each a ledger row,\n"
        "for requests the server answered after wrk stopped counting (at most one per connection)."
    )
    if any(r.spec.nodes > 1 for r in results):
        print(
            "nodes > 1: one wrk process per node, run at the same time,\n"
            "1 thread and connections // nodes connections each;\n"
            "lookup req/s, non-200 and the ledger check use their summed counts\n"
            "(req/s = summed requests / the longest run),\n"
            "p99 is the largest of their p99s (an upper bound),\n"
            "p50 the request-weighted mean of their p50s (an estimate).\n"
            "The nodes share one database: one SQLite file, or one PostgreSQL database."
        )
    if any(r.spec.database == "postgresql" for r in results):
        print(
            "synchronous '-': a PostgreSQL run\n"
            "(SQLite's PRAGMA synchronous does not apply; the cluster keeps fsync on)."
        )
    print(
        f"wrk, every node and PostgreSQL ran on the same {cores}: several nodes on one machine measure contention\n"
        "for those CPUs and for the one database, not how the service scales out over machines."
    )


def wrk_version() -> str:
    done = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    return (done.stdout or done.stderr).splitlines()[0].strip() if (done.stdout or done.stderr) else "wrk"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Requests per second of numlookup serve, measured with wrk.")
    parser.add_argument(
        "--database",
        nargs="+",
        default=["sqlite"],
        choices=DATABASES,
        help="databases to measure on (default: sqlite); postgresql starts a throwaway cluster",
    )
    parser.add_argument(
        "--nodes",
        type=int,
        nargs="+",
        default=[1],
        help="numlookup serve processes sharing one database, each loaded by its own wrk (default: 1)",
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts per node (default: 1 2)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (default: 10)")
    parser.add_argument("--connections", type=int, default=64, help="open connections over all nodes (default: 64)")
    parser.add_argument(
        "--group-commit",
        nargs="+",
        default=["on", "off"],
        choices=["on", "off"],
        help="measure with the charges of concurrent requests committed together, one by one, or both (default)",
    )
    parser.add_argument(
        "--access-log",
        nargs="+",
        default=["on", "off"],
        choices=["on", "off"],
        help="measure with the request log on (the default setting), off, or both (default)",
    )
    parser.add_argument(
        "--synchronous",
        nargs="+",
        default=["FULL"],
        choices=SYNCHRONOUS_MODES,
        type=str.upper,
        help="SQLite synchronous modes to measure (default: FULL); PostgreSQL runs ignore it",
    )
    args = parser.parse_args(argv)
    if any(w < 1 for w in args.workers):
        parser.error("--workers must be at least 1")
    if any(n < 1 for n in args.nodes):
        parser.error("--nodes must be at least 1")
    if args.duration < 1:
        parser.error("--duration must be at least 1")
    if args.connections < max(WRK_THREADS, *args.nodes):
        parser.error(
            f"--connections must be at least {max(WRK_THREADS, *args.nodes)} (one per wrk thread, one per node)"
        )
    return args


def run_all(
    specs: list[RunSpec], cluster: PostgresCluster | None, args: argparse.Namespace, body: bytes
) -> tuple[list[RunResult], list[str]]:
    """Measure every run; a run that fails is reported and the next one goes on."""
    results: list[RunResult] = []
    failures: list[str] = []
    for spec in specs:
        try:
            results.append(measure(spec, cluster, args.connections, args.duration, body))
        except (BenchError, subprocess.TimeoutExpired) as exc:
            failures.append(f"{spec.label}: {exc}")
            print(f"  FAILED: {exc}", file=sys.stderr, flush=True)
    return results, failures


def require_wrk(bench: str) -> None:
    """Stop with how to install wrk, before any server starts, where it is not on PATH."""
    if shutil.which("wrk") is None:
        print(
            f"{bench} needs wrk, the HTTP benchmarking tool, and it is not on PATH.\n"
            "Install it:  Debian/Ubuntu: sudo apt-get install wrk   macOS: brew install wrk\n"
            "or build it from https://github.com/wg/wrk and put it on PATH.",
            file=sys.stderr,
        )
        raise SystemExit(2)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    require_wrk("bench/server.py")
    numbers = lua_numbers()
    check_numbers(numbers)
    body = request_body(numbers)
    specs = run_specs(args)

    cpus = os.cpu_count() or 1
    print(
        f"{wrk_version()}; {len(specs)} runs, {args.connections} connections, {args.duration} s per run, "
        f"timeout {WRK_TIMEOUT_S} s, {NUMBERS_PER_REQUEST} numbers per request; one node: 1 wrk process with "
        f"{WRK_THREADS} threads; N nodes: N wrk processes with 1 thread and {args.connections} // N connections each"
    )
    print(
        f"This machine has {cpus} CPU{'s' if cpus > 1 else ''}: wrk, the nodes and PostgreSQL share them, "
        "so the figures are lower than on servers with their own cores."
    )
    cluster: PostgresCluster | None = None
    try:
        if "postgresql" in args.database:
            try:
                cluster = start_postgres()
            except (RuntimeError, subprocess.CalledProcessError, ImportError) as exc:
                detail = getattr(exc, "stderr", None) or ""
                print(f"could not start a PostgreSQL cluster: {exc}\n{detail}".rstrip(), file=sys.stderr)
                return 2
            print(f"PostgreSQL: a throwaway cluster on 127.0.0.1:{cluster.port}, {postgres_settings(cluster)}")
        results, failures = run_all(specs, cluster, args, body)
    finally:
        if cluster is not None:
            cluster.stop()

    print()
    if results:
        print_table(results)
        print()
        print_notes(results, cpus)
    for r in results:
        issues = []
        if r.lookup.non200 or r.lookup.socket_errors:
            issues.append(f"lookup: {r.lookup.non200} non-200, {r.lookup.socket_errors} socket errors")
        if r.raw.non200 or r.raw.socket_errors:
            issues.append(f"raw ASGI: {r.raw.non200} non-200, {r.raw.socket_errors} socket errors")
        if r.healthz.non200 or r.healthz.socket_errors:
            issues.append(f"/healthz: {r.healthz.non200} non-200, {r.healthz.socket_errors} socket errors")
        if not r.ledger.ok:
            issues.append(f"ledger {r.ledger.message}")
        for issue in issues:
            print(f"warning: {r.spec.label}: {issue}")
    for failure in failures:
        print(f"failed: {failure}")
    return 1 if failures or any(not r.ledger.ok for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
