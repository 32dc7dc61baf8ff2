"""Numbers per second of the compiled numbering plan, and its agreement with phonenumbers.

Why: the plan exists to resolve large batches far faster than a loop over
phonenumbers while answering exactly as phonenumbers does. This benchmark
measures both claims on one reproducible corpus (a seeded mix over every
region: valid, invalid, too short/long, random digits, national formats with a
region hint, garbage; see ``sample_corpus``):

- (a) the plan in-process on the corpus's E.164 input (``+`` and digits),
- (b) ``numlookup lookup`` end to end (and, with ``--e2e-csv``, the same numbers as a
  CSV column, ``--column 1``, whose other columns are kept),
- (c) the naive loop (parse + is_valid + number_type + region + carrier name, with
  ``phonenumbers.enable_pattern_cache()``) on a sample, extrapolated,

then the ratio (a)/(c), the agreement of every field on the whole corpus, the
slow-path share, compile and load times and the arrays' memory. It pins itself
to one CPU core. It is run by hand and never by the test suite::

    python bench/plan.py [--size 1000000] [--naive-sample 50000] [--seed 2024] [--skip-agreement]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import phonenumbers
from phonenumbers import carrier

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from numlookup.numbering.layout import ARRAYS
from numlookup.numbering.plan import NumberingPlan
from numlookup.numbering.reference import reference
from tests.corpus import sample_corpus

_E164 = re.compile(r"\+[0-9]{1,15}")


def pin_one_core() -> str:
    """Measure on one core, as the target is stated; numpy's searchsorted is single-threaded anyway."""
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"pinned to CPU {core}"
    return "not pinned (no sched_setaffinity)"


def naive_loop(numbers: Sequence[str]) -> int:
    """The baseline the issue names: one phonenumbers round trip per number."""
    valid = 0
    for raw in numbers:
        try:
            number = phonenumbers.parse(raw, None)
        except phonenumbers.NumberParseException:
            continue
        ok = phonenumbers.is_valid_number(number)
        phonenumbers.number_type(number)
        phonenumbers.region_code_for_number(number)
        carrier.name_for_number(number, "en")
        valid += ok
    return valid


def lookup_end_to_end(numbers: Sequence[str], lines: int, as_csv: bool = False) -> tuple[float, float | None]:
    """(b) ``numlookup lookup --input FILE --output FILE`` on a ``lines``-line file, numbers per second.

    The file repeats the E.164 corpus; the rate counts the whole command (start-up,
    reading, resolving, writing CSV). ``as_csv``: each line is ``name,number,note``
    (every tenth name quoted, with a comma), read with ``--column 1``, its columns kept.
    Returns the rate and the peak RSS in MiB.
    """
    root = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        source, target = Path(tmp) / "numbers.txt", Path(tmp) / "out.csv"
        if as_csv:
            numbers = [
                f'"Name {i}, Jr.",{n},note {i}' if i % 10 == 0 else f"Name {i},{n},note {i}"
                for i, n in enumerate(numbers)
            ]
        block = "\n".join(numbers) + "\n"
        with source.open("w") as fh:
            written = 0
            while written < lines:
                take = min(len(numbers), lines - written)
                fh.write(block if take == len(numbers) else "\n".join(numbers[:take]) + "\n")
                written += take
        env = {k: v for k, v in os.environ.items() if not k.startswith("NUMLOOKUP_")}
        env["NUMLOOKUP_DATA_DIR"] = str(Path(tmp) / "data")
        upgrade = [sys.executable, "-m", "numlookup", "db", "upgrade"]  # lookup opens, never creates, the database
        subprocess.run(upgrade, check=True, capture_output=True, env=env, cwd=root)
        command = [sys.executable, "-m", "numlookup", "lookup", "--input", str(source), "--output", str(target)]
        if as_csv:
            command += ["--column", "1"]
        subprocess.run(command, check=True, capture_output=True, env=env, cwd=root)  # warms the plan cache
        timed = Path("/usr/bin/time").exists()
        if timed:
            command = ["/usr/bin/time", "-f", "PEAK_KB=%M", *command]
        start = time.perf_counter()
        done = subprocess.run(command, check=True, capture_output=True, text=True, env=env, cwd=root)
        elapsed = time.perf_counter() - start
        with target.open("rb") as fh:
            out_lines = sum(1 for _ in fh) - 1
        if out_lines != lines:
            raise SystemExit(f"numlookup lookup wrote {out_lines} result lines for {lines} inputs")
        peak = next((int(x.split("=")[1]) / 1024 for x in done.stderr.splitlines() if x.startswith("PEAK_KB=")), None)
        return lines / elapsed, peak


def start_up(cache: Path) -> float:
    """Seconds from a fresh interpreter to a loaded plan, imports included: what a server start pays."""
    code = (
        "import time; t = time.perf_counter(); from pathlib import Path; "
        "from numlookup.numbering.plan import NumberingPlan; "
        f"NumberingPlan.load(Path({str(cache)!r})); print(time.perf_counter() - t)"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, cwd=root)
    return float(out.stdout.strip())


def best_rate(fn: Callable[[Sequence[str]], object], items: Sequence[str], repeat: int) -> float:
    """Items per second of the fastest of ``repeat`` runs (the first also warms caches)."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn(items)
        best = min(best, time.perf_counter() - start)
    return len(items) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--naive-sample", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--skip-agreement", action="store_true", help="skip the (slow) full comparison")
    parser.add_argument("--e2e-lines", type=int, default=10_000_000, help="lines of the file for (b)")
    parser.add_argument("--e2e-csv", action="store_true", help="(b) again on a 3-column CSV, its columns kept")
    args = parser.parse_args()

    print(f"phonenumbers {phonenumbers.__version__}, numpy {np.__version__}, {pin_one_core()}")
    start = time.perf_counter()
    numbers, hints = sample_corpus(args.size, args.seed)
    e164 = [n for n, h in zip(numbers, hints, strict=True) if h is None and _E164.fullmatch(n)]
    print(f"corpus: {len(numbers):,} inputs ({len(e164):,} E.164) built in {time.perf_counter() - start:.1f} s")

    with tempfile.TemporaryDirectory() as cache:
        cold_s, warm_s = start_up(Path(cache)), start_up(Path(cache))
    print(
        f"start-up in a fresh interpreter (import + NumberingPlan.load): compile, no cache {cold_s:.2f} s; "
        f"from the cache {warm_s:.2f} s"
    )
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with tempfile.TemporaryDirectory() as cache:
        cold = NumberingPlan.load(Path(cache))
        warm = NumberingPlan.load(Path(cache))
    plan = warm
    table_bytes = sum(getattr(plan, name).nbytes for name in ARRAYS)
    print(
        f"in this process (metadata already loaded by the corpus): compile {cold.load_seconds:.2f} s, "
        f"load {warm.load_seconds:.3f} s"
    )
    print(
        f"arrays: {table_bytes / 2**20:.1f} MiB in numpy arrays; "
        f"{len(plan.main_starts):,} type/region segments, {len(plan.carrier_starts):,} carrier segments; "
        f"calling codes always on the slow path: {list(plan.slow_codes) or 'none'}"
    )
    del cold

    phonenumbers.enable_pattern_cache()
    plan_rate = best_rate(plan.resolve_e164, e164, repeat=3)
    result = plan.resolve_e164(e164)
    print(
        f"(a) plan in-process, E.164 input: {plan_rate:,.0f} numbers/s "
        f"(slow path {result.slow:,} = {result.slow / len(e164):.3%})"
    )

    e2e, peak = lookup_end_to_end(e164, args.e2e_lines)
    print(
        f"(b) numlookup lookup end to end, {args.e2e_lines:,}-line file to CSV: {e2e:,.0f} numbers/s "
        f"(whole command, start-up included; peak RSS {f'{peak:,.0f} MiB' if peak else 'unknown'})"
    )
    if args.e2e_csv:
        e2e, peak = lookup_end_to_end(e164, args.e2e_lines, as_csv=True)
        print(
            f"(b) the same as a 3-column CSV, --column 1, columns kept: {e2e:,.0f} numbers/s "
            f"(peak RSS {f'{peak:,.0f} MiB' if peak else 'unknown'})"
        )

    sample = e164[: args.naive_sample]
    naive_rate = best_rate(naive_loop, sample, repeat=1)
    print(
        f"(c) naive phonenumbers loop, pattern cache on: {naive_rate:,.0f} numbers/s "
        f"(measured on the first {len(sample):,} E.164 inputs; {len(e164):,} would take "
        f"{len(e164) / naive_rate:.0f} s - extrapolated)"
    )
    print(f"ratio (a)/(c): {plan_rate / naive_rate:.0f}x")

    full = plan.resolve_e164(numbers, hints)
    print(
        f"slow path on the whole corpus (incl. national formats and garbage): "
        f"{full.slow:,} = {full.slow / len(numbers):.2%}"
    )
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak RSS {rss_after / 1024:.0f} MiB (before the plan: {rss_before / 1024:.0f} MiB; includes the corpus)")

    if args.skip_agreement:
        return
    start = time.perf_counter()
    bad = []
    for i, (raw, hint) in enumerate(zip(numbers, hints, strict=True)):
        got, expected = full.row(i), reference(raw, hint)
        if got != expected:
            bad.append((raw, hint, got, expected))
    agree = len(numbers) - len(bad)
    print(
        f"agreement with phonenumbers (valid, reason, type, region, carrier, E.164): "
        f"{agree:,} / {len(numbers):,} ({time.perf_counter() - start:.0f} s)"
    )
    for raw, hint, got, expected in bad[:20]:
        print(f"  {raw!r} hint={hint}: plan {got} / phonenumbers {expected}")
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main()
