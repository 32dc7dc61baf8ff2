"""How fast the CLI answers, against what a user would otherwise run, in the same run.

Why: a command-line tool is judged by how soon it answers. Absolute times on a
shared machine vary several-fold from day to day, so each figure is set against
a reference measured minutes apart in the same invocation:

1. ``numlookup lookup +37251234567`` with the table cache warm, against
   ``cli_reference_one.py`` (parse that number with phonenumbers, print its
   carrier): the ratio numlookup / reference (target ≤ 4).
2. ``numlookup lookup --input FILE --format jsonl --output OUT`` on a
   ``--lines``-line mixed file (every region, ``--invalid`` share invalid, drawn
   from ``tests/corpus.py``), against ``cli_reference_bulk.py`` (the naive loop:
   parse, is_valid, region, carrier, one JSON line each, pattern cache on): the
   ratio reference / numlookup (target ≥ 20). The naive loop runs on the
   first ``--naive-lines`` lines and is scaled to the whole file (see
   ``naive_seconds``); ``--naive-lines`` as large as ``--lines`` runs it whole.
3. ``numlookup serve`` with the table cache warm, from the process start to the
   first 200 of ``GET /healthz`` and of a real ``POST /v1/hlr/sync`` (target ≤ 1 s),
   against ``raw_asgi.py`` (a raw ASGI app on uvicorn, ``bench/server.py``'s
   reference) started and polled the same way: the ratio numlookup / reference.

Every command runs in a fresh interpreter, as a user runs it; each figure is the
median of ``--repeat`` runs. It is run by hand, never by the test suite::

    python bench/cli.py [--lines 300000] [--invalid 0.08] [--naive-lines 50000] [--repeat 5] [--rows 1 2 3]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NUMBER = "+37251234567"
HERE = Path(__file__).resolve().parent


def environment(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMLOOKUP_")}
    env["NUMLOOKUP_DATA_DIR"] = str(data_dir)
    # A user's Python writes bytecode caches; without them every run compiles numlookup's sources again.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def numlookup(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "numlookup", *args],
        env=environment(data_dir),
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )


def timed(command: Sequence[str], env: dict[str, str]) -> float:
    """Wall seconds of one run of ``command`` (its output discarded), which must succeed."""
    start = time.perf_counter()
    subprocess.run(command, env=env, stdout=subprocess.DEVNULL, check=True, cwd=ROOT)
    return time.perf_counter() - start


def medians(runs: int, commands: Sequence[Sequence[str]], env: dict[str, str]) -> list[float]:
    """Each command's median wall time over ``runs`` rounds; a round runs every command once, in turn.

    Interleaved, so that a reference and the command set against it share the
    machine's load of the same minute (on a shared machine it swings 2x within one).
    """
    times: list[list[float]] = [[] for _ in commands]
    for _ in range(runs):
        for command, runs_of in zip(commands, times, strict=True):
            runs_of.append(timed(command, env))
    return [statistics.median(runs_of) for runs_of in times]


def mixed_file(path: Path, lines: int, invalid: float, seed: int) -> str:
    """``lines`` inputs over every region, ``invalid`` of them invalid, shuffled; returns a description.

    Drawn from ``tests.corpus.sample_corpus``'s international inputs (its garbage
    included), sorted into valid and invalid by the compiled plan (which the
    suite and ``bench/numbering.py`` hold equal to phonenumbers).
    """
    from numlookup.numbering.plan import NumberingPlan
    from tests.corpus import sample_corpus

    inputs, hints = sample_corpus(lines * 3, seed)
    pool = [raw for raw, hint in zip(inputs, hints, strict=True) if hint is None and "\n" not in raw]
    batch = NumberingPlan.load(path.parent / "plan-cache").resolve_e164(pool)
    valid_pool = [raw for raw, ok in zip(pool, batch.valid.tolist(), strict=True) if ok]
    invalid_pool = [raw for raw, ok in zip(pool, batch.valid.tolist(), strict=True) if not ok]
    regions = {batch.regions[r] for r, ok in zip(batch.region.tolist(), batch.valid.tolist(), strict=True) if ok}
    bad = round(lines * invalid)
    rng = random.Random(seed)
    chosen = rng.sample(valid_pool, lines - bad) + rng.sample(invalid_pool, bad)
    rng.shuffle(chosen)
    path.write_text("\n".join(chosen) + "\n", encoding="utf-8")
    return f"{lines:,} lines, {bad:,} invalid, valid numbers from {len(regions)} regions"


def row_one(data_dir: Path, repeat: int) -> None:
    env = environment(data_dir)
    reference, ours = medians(
        repeat,
        [
            [sys.executable, str(HERE / "cli_reference_one.py"), NUMBER],
            [sys.executable, "-m", "numlookup", "lookup", NUMBER],
        ],
        env,
    )
    print(
        f"(1) numlookup lookup {NUMBER}, cache warm: {ours:.3f} s; reference (phonenumbers + carrier) {reference:.3f} s"
    )
    print(f"    ratio numlookup/reference: {ours / reference:.1f}x (target <= 4x)")


def row_two(data_dir: Path, lines: int, invalid: float, seed: int, repeat: int, sample: int) -> None:
    """Against the naive loop: measured on the whole file, or extrapolated from its first ``sample`` lines.

    Extrapolated as start-up (the script on an empty file) plus the sample's loop
    time scaled to ``lines``: the loop's cost per line does not depend on the
    file's length, and a 300,000-line run takes a minute on a loaded machine.
    """
    work = data_dir / "bulk"
    work.mkdir(exist_ok=True)
    source = work / "mixed.txt"
    print(f"    input: {mixed_file(source, lines, invalid, seed)}")
    env = environment(data_dir)
    script = [sys.executable, str(HERE / "cli_reference_bulk.py")]
    out = work / "out.jsonl"
    ours_command = [sys.executable, "-m", "numlookup", "lookup", "--input", str(source), "--format", "jsonl"]
    ours_command += ["--output", str(out)]
    if sample >= lines:
        reference, ours = medians(repeat, [[*script, str(source), str(work / "naive.jsonl")], ours_command], env)
        how = "measured"
    else:
        head = work / "sample.txt"
        with source.open("rb") as full:
            head.write_bytes(b"".join(full.readline() for _ in range(sample)))
        (work / "empty.txt").write_bytes(b"")
        startup, part, ours = medians(
            repeat,
            [
                [*script, str(work / "empty.txt"), str(work / "naive.jsonl")],
                [*script, str(head), str(work / "naive.jsonl")],
                ours_command,
            ],
            env,
        )
        reference = startup + (part - startup) * lines / sample
        how = f"start-up {startup:.2f} s + {sample:,} lines, scaled"
    written = sum(1 for _ in out.open("rb"))
    assert written == lines, f"numlookup wrote {written} lines for {lines}"
    print(
        f"(2) numlookup lookup --input ({lines:,} lines) --format jsonl: {ours:.2f} s "
        f"({lines / ours:,.0f}/s); naive loop {reference:.2f} s ({lines / reference:,.0f}/s; {how})"
    )
    print(f"    ratio naive/numlookup: {reference / ours:.1f}x faster (target >= 20x)")


def _status(port: int, method: str, path: str, body: bytes | None, headers: dict[str, str]) -> int | None:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request(method, path, body=body, headers=headers)
        status = conn.getresponse().status
        conn.close()
        return status
    except OSError:
        return None


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_to_first_200(
    command: Sequence[str], env: dict[str, str], port: int, auth: str, log_path: Path
) -> tuple[float, float]:
    """Seconds from ``command`` (a server on ``port``) starting to its first 200 on /healthz, and on /v1/hlr/sync."""
    body = json.dumps({"numbers": [NUMBER]}).encode()
    headers = {"Content-Type": "application/json", "Authorization": f"Basic {auth}"}
    log = log_path.open("ab")
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
    try:
        health = sync = None
        deadline = start + 30
        while sync is None and time.perf_counter() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"{command[1]} exited {process.returncode}: see {log_path}")
            if health is None and _status(port, "GET", "/healthz", None, {}) == 200:
                health = time.perf_counter() - start
            if health is not None and _status(port, "POST", "/v1/hlr/sync", body, headers) == 200:
                sync = time.perf_counter() - start
            if sync is None:
                time.sleep(0.005)
        if health is None or sync is None:
            raise SystemExit(f"{command[1]} gave no 200 within 30 s: see {log_path}")
        return health, sync
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


def row_three(data_dir: Path, repeat: int) -> None:
    """``numlookup serve`` against ``raw_asgi.py`` (uvicorn, the same loop and parser, no framework), in turn.

    The reference is the floor of any server on uvicorn: the interpreter, uvicorn's
    import and its start. It answers /healthz and the sync route as numlookup does.
    """
    creds = json.loads(numlookup(data_dir, "accounts", "create", "bench", "--credits", "1000", "--json").stdout)
    auth = base64.b64encode(f"{creds['api_username']}:{creds['api_password']}".encode()).decode()
    ours: list[tuple[float, float]] = []
    reference: list[tuple[float, float]] = []
    for _ in range(repeat):
        port = _free_port()
        env = {**environment(data_dir), "BENCH_AUTHORIZATION": f"Basic {auth}"}
        raw = [sys.executable, str(HERE / "raw_asgi.py"), "--port", str(port)]
        reference.append(start_to_first_200(raw, env, port, auth, data_dir / "raw.log"))
        port = _free_port()
        serve = [sys.executable, "-m", "numlookup", "serve", "--host", "127.0.0.1", "--port", str(port)]
        ours.append(start_to_first_200(serve, environment(data_dir), port, auth, data_dir / "serve.log"))
    health, sync = (statistics.median(r[i] for r in ours) for i in (0, 1))
    raw_health, raw_sync = (statistics.median(r[i] for r in reference) for i in (0, 1))
    print(
        f"(3) numlookup serve, cache warm: start to first 200 on /healthz {health:.3f} s (target <= 1 s), "
        f"on /v1/hlr/sync {sync:.3f} s"
    )
    print(f"    reference (raw_asgi.py on uvicorn): start to first 200 {raw_health:.3f} s, sync route {raw_sync:.3f} s")
    print(
        f"    ratio numlookup/reference: {health / raw_health:.1f}x on /healthz, {sync / raw_sync:.1f}x on /v1/hlr/sync"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=300_000)
    parser.add_argument("--invalid", type=float, default=0.08)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (row 2: at most 3)")
    parser.add_argument(
        "--naive-lines", type=int, default=50_000, help="lines the naive loop runs on (>= --lines: the whole file)"
    )
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 2, 3], choices=[1, 2, 3])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="numlookup-bench-cli-") as tmp:
        data_dir = Path(tmp)
        numlookup(data_dir, "db", "upgrade")
        numlookup(data_dir, "lookup", NUMBER)  # compiles the table cache: every figure below is "cache warm"
        if 1 in args.rows:
            row_one(data_dir, args.repeat)
        if 2 in args.rows:
            row_two(data_dir, args.lines, args.invalid, args.seed, min(args.repeat, 3), args.naive_lines)
        if 3 in args.rows:
            row_three(data_dir, args.repeat)


if __name__ == "__main__":
    main()
