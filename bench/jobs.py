"""Bulk jobs: an offline job's throughput against ``numlookup lookup --input``, and sync latency while a job runs.

Why: a job resolves its numbers with the same bulk engine as the CLI, so it should
be about as fast, and it runs inside the server, so it must not slow the sync
API. The targets (issue 15): an offline-only job of 1,000,000 numbers goes from
submit to ``COMPLETED`` in at most twice the time ``numlookup lookup --input``
takes for the same file, measured in the same run; and the sync call keeps its
latency while such a job runs. It prints:

1. ``numlookup lookup --input FILE --output FILE`` on the file (start-up
   included), numbers per second;
2. the same file submitted as a job (``POST /v1/hlr/jobs``, streamed as
   ``text/plain``) until ``GET /v1/hlr/jobs/{id}`` says ``COMPLETED``: the time to
   the 202 (reading, resolving, staging, reserving), then to ``COMPLETED``, the
   total, numbers per second and the ratio to (1); it also checks that the
   job's CSV equals the CLI's output and that the job was charged exactly
   (distinct valid numbers × 0.01, one ledger row per chunk); and the peak
   resident memory of all the server's processes during the job, against the
   CLI's own peak for the same file;
3. single-number ``POST /v1/hlr/sync`` requests from a process of their own, at
   ``--rate`` per second: p50/p99/max with no job, then while a second job of
   the same file runs (from its submit to its ``COMPLETED``), also split into
   its upload (submit to 202) and processing (202 to ``COMPLETED``).

It is run by hand and never by the test suite::

    python bench/jobs.py [--numbers 1000000] [--workers 1] [--rate 50] [--database sqlite|postgresql] [--no-latency]

The server, the CLI, the load process and (with ``--database postgresql``) the
database all run on this machine and share its CPUs; the ratios compare figures
taken in the same run, on the same machine.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import multiprocessing
import multiprocessing.connection
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from numlookup.accounts import create_account, get_account  # noqa: E402  # after sys.path names the checkout
from numlookup.billing import format_amount, ledger_rows, parse_amount  # noqa: E402  # after sys.path names the checkout
from numlookup.store import make_engine, upgrade  # noqa: E402  # after sys.path names the checkout
from tests import support  # noqa: E402  # after sys.path names the checkout
from tests.support import Server, database_url, environment  # noqa: E402  # after sys.path names the checkout

PRICE = parse_amount("0.01")
SYNC_NUMBER = "+37251000001"
ENDED = ("COMPLETED", "FAILED", "STOPPED")


def corpus(size: int, seed: int = 15) -> list[str]:
    """A contact-list-like mix: mobile numbers of a few countries in several spellings, repeats and junk."""
    rng = random.Random(seed)
    out: list[str] = []
    for i in range(size):
        pick = rng.random()
        if pick < 0.35:
            out.append(f"+3725{rng.randrange(10**7):07d}")
        elif pick < 0.55:
            out.append(f"+3584{rng.randrange(10**8):08d}")
        elif pick < 0.75:
            out.append(f"49151{rng.randrange(10**8):08d}")
        elif pick < 0.85:
            out.append(f"+44 7{rng.randrange(10**9):09d}")
        elif pick < 0.95 and out:
            out.append(out[rng.randrange(len(out))])  # a repeat
        else:
            out.append(rng.choice(["12345", "n/a", "+999123", "+372 5"]) + str(i % 7))
    return out


def pace(
    url: str, auth: tuple[str, str], rate: float, seconds: float, conn: multiprocessing.connection.Connection
) -> None:
    """Sync lookups at ``rate`` a second for ``seconds``, one connection, kept alive; sends (start, latency) pairs."""
    import base64
    import json

    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"numbers": [SYNC_NUMBER]}).encode()
    token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    headers = {"Content-Type": "application/json", "Authorization": f"Basic {token}"}
    client = http.client.HTTPConnection(host, int(port), timeout=30)
    samples: list[tuple[float, float]] = []
    failures = 0
    interval = 1.0 / rate
    begin = time.time()
    next_at = begin
    while time.time() - begin < seconds:
        wait = next_at - time.time()
        if wait > 0:
            time.sleep(wait)
        next_at += interval
        started = time.time()
        t0 = time.perf_counter()
        try:
            client.request("POST", "/v1/hlr/sync", body, headers)
            response = client.getresponse()
            response.read()
            ok = response.status == 200
        except (OSError, http.client.HTTPException):
            client.close()
            client = http.client.HTTPConnection(host, int(port), timeout=30)
            ok = False
        if ok:
            samples.append((started, time.perf_counter() - t0))
        else:
            failures += 1
    conn.send((samples, failures))
    conn.close()


class Pacer:
    """``pace`` in a process of its own: in ours its client would share a GIL with the job's upload."""

    def __init__(self, url: str, auth: tuple[str, str], rate: float, seconds: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe(duplex=False)
        self._process = context.Process(target=pace, args=(url, auth, rate, seconds, child), daemon=True)
        self._process.start()
        child.close()

    def result(self) -> tuple[list[tuple[float, float]], int]:
        samples, failures = self._conn.recv()
        self._process.join()
        return samples, failures


@dataclass(frozen=True, slots=True)
class Latency:
    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, samples: list[float]) -> Latency:
        if not samples:
            return cls(0, 0.0, 0.0, 0.0)
        ordered = sorted(samples)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return cls(len(ordered), statistics.median(ordered) * 1000, p99 * 1000, ordered[-1] * 1000)

    def __str__(self) -> str:
        return f"n={self.count:5d}  p50 {self.p50_ms:7.2f} ms  p99 {self.p99_ms:7.2f} ms  max {self.max_ms:8.2f} ms"


@dataclass(frozen=True, slots=True)
class JobRun:
    job_id: str
    submitted: float  # wall clock: the submit began
    accepted: float  # the 202 arrived
    completed: float  # COMPLETED was seen
    status: str

    @property
    def total(self) -> float:
        return self.completed - self.submitted


class PeakMemory:
    """The largest summed resident set of a process group (the server: supervisor, workers, their job process).

    Sampled from /proc every 50 ms in a thread: a peak shorter than that can be missed.
    """

    def __init__(self, group: int) -> None:
        self.group = group
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        total = 0
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if os.getpgid(int(entry.name)) != self.group:
                    continue
                for line in (entry / "status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except (OSError, ProcessLookupError):
                continue
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.05)

    def __enter__(self) -> PeakMemory:
        self.peak = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())


def chunks(path: Path, size: int = 1 << 20) -> Iterator[bytes]:
    with path.open("rb") as fh:
        while block := fh.read(size):
            yield block


def run_job(client: httpx.Client, path: Path) -> JobRun:
    submitted = time.time()
    response = client.post("/v1/hlr/jobs", content=chunks(path), headers={"Content-Type": "text/plain"})
    accepted = time.time()
    if response.status_code != 202:
        raise SystemExit(f"the submit answered {response.status_code}: {response.text}")
    job_id = response.json()["id"]
    while True:
        status = client.get(f"/v1/hlr/jobs/{job_id}").json()["status"]
        if status in ENDED:
            return JobRun(job_id, submitted, accepted, time.time(), status)
        time.sleep(0.05)


def cli_lookup(data_dir: Path, source: Path, target: Path) -> tuple[float, int]:
    """Seconds, and the CLI process's peak resident set in bytes (``time -v``'s figure, from wait4)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "numlookup", "lookup", "--input", str(source), "--output", str(target)],
        env=environment(data_dir),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"the CLI failed: {process.stderr.read().decode() if process.stderr else ''}")
    return elapsed, usage.ru_maxrss * 1024


def distinct_valid(cli_csv: Path) -> int:
    with cli_csv.open(newline="") as fh:
        return len({row["number"] for row in csv.DictReader(fh) if row["valid"] == "true"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--numbers", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=1, help="serve worker processes")
    parser.add_argument("--rate", type=float, default=50.0, help="sync requests per second during the latency runs")
    parser.add_argument("--baseline-seconds", type=float, default=10.0, help="the latency run with no job")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--latency",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="(3): sync latency with and without a job",
    )
    args = parser.parse_args(argv)
    support.BACKEND = args.database
    try:
        with tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp:
            return bench(Path(tmp), args)
    finally:
        support.stop_cluster()


def bench(tmp: Path, args: argparse.Namespace) -> int:
    data_dir = tmp / "data"
    data_dir.mkdir()
    engine = make_engine(database_url(data_dir))
    upgrade(engine)
    creds = create_account(engine, "bench", credits=parse_amount("1000000"))
    source = tmp / "numbers.txt"
    source.write_text("\n".join(corpus(args.numbers)) + "\n")
    print(f"{args.numbers:,} numbers, {source.stat().st_size / 1e6:.1f} MB; {args.database}, {args.workers} worker(s)")
    env = {"NUMLOOKUP_RATE_LIMIT_PER_IP": "0", "NUMLOOKUP_BODY_TIMEOUT_SECONDS": "60"}
    server = Server(data_dir, workers=args.workers, env=env).start()
    try:
        cli_csv = tmp / "cli.csv"
        cli_seconds, cli_peak = cli_lookup(data_dir, source, cli_csv)
        print(
            f"(1) numlookup lookup --input: {cli_seconds:6.2f} s  {args.numbers / cli_seconds:10,.0f} numbers/s  "
            f"peak RSS {cli_peak / 2**20:7.1f} MiB"
        )

        auth = (creds.api_username, creds.api_password)
        assert server.process is not None
        with httpx.Client(base_url=server.url, auth=auth, timeout=600) as client:
            idle = PeakMemory(server.process.pid)
            with idle:
                time.sleep(0.5)
            with PeakMemory(server.process.pid) as memory:
                job = run_job(client, source)
            ratio = job.total / cli_seconds
            print(
                f"(2) job {job.status}: 202 after {job.accepted - job.submitted:6.2f} s, COMPLETED after "
                f"{job.completed - job.accepted:6.2f} s more; total {job.total:6.2f} s  "
                f"{args.numbers / job.total:10,.0f} numbers/s  = {ratio:.2f} x the CLI (target <= 2)"
            )
            print(
                f"    server peak RSS (all its processes) {memory.peak / 2**20:7.1f} MiB, "
                f"{(memory.peak - idle.peak) / 2**20:+7.1f} MiB over idle ({idle.peak / 2**20:.1f}); "
                f"the upload was {source.stat().st_size / 2**20:.1f} MiB"
            )
            downloaded = client.get(f"/v1/hlr/jobs/{job.job_id}/results?format=csv").content
            same = downloaded == cli_csv.read_bytes()
            shown = client.get(f"/v1/hlr/jobs/{job.job_id}").json()
            expected = distinct_valid(cli_csv) * PRICE
            rows = [r for r in ledger_rows(engine, get_account(engine, "bench").id, None) if r.kind == "job"]
            charged = -sum(r.amount for r in rows if (r.request_id or "").startswith(job.job_id + "/"))
            verdict = "exact" if charged == expected else f"EXPECTED {format_amount(expected)}"
            print(
                f"    CSV {'identical to' if same else 'DIFFERENT FROM'} the CLI's; charged {shown['charged']} "
                f"({verdict}), reserved now {shown['reserved']}"
            )

            if not args.latency:
                return 0 if same and charged == expected and ratio <= 2 else 1
            pacer = Pacer(server.url, auth, args.rate, args.baseline_seconds)
            baseline, failed = pacer.result()
            print(f"(3) sync, no job:          {Latency.of([s for _, s in baseline])}  failures {failed}")
            pacer = Pacer(server.url, auth, args.rate, job.total * 2.5 + 10)
            time.sleep(2.0)  # the load process is up and steady
            second = run_job(client, source)
            samples, failed = pacer.result()
            during = [s for t, s in samples if second.submitted <= t <= second.completed]
            upload = [s for t, s in samples if second.submitted <= t <= second.accepted]
            work = [s for t, s in samples if second.accepted <= t <= second.completed]
            print(f"    sync, during a job:    {Latency.of(during)}  (the job took {second.total:.2f} s)")
            print(f"      its upload:          {Latency.of(upload)}")
            print(f"      its processing:      {Latency.of(work)}  failures {failed}")
            base, busy = Latency.of([s for _, s in baseline]), Latency.of(during)
            if base.p99_ms:
                print(f"    p99 during / without: {busy.p99_ms / base.p99_ms:.2f}")
        return 0 if same and charged == expected and ratio <= 2 else 1
    finally:
        server.stop()
        engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
