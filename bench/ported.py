"""The ported-number table at scale: memory per number, load time, lookups per second, import speed.

Why: portability feeds run to a hundred million numbers, and the table must load
quickly and answer without slowing lookups. This builds tables of the sizes given
straight from random numbers (no CSV), stores them as the importer does, then
measures, for each size:

- bytes per number on disk and resident once every page is touched;
- load time from the stored form (memory-mapped, as servers load it) and the time
  to fault every page in;
- lookups per second of a batch of 1,000,000 keys (half hits), against the
  baseline of a Python ``dict`` of the same numbers (sizes up to 10M only: a dict
  of 100M numbers would need ~10 GB);

and, with ``--import-sizes``, the time, rows per second and peak memory of
``numlookup data import-ported`` on a generated ``number,mccmnc`` CSV file, end to
end (CLI start, parse, validate, sort, write, activate), against the reference a
user would compare it with, in the same run: a whole Python process that only
parses the same file with ``pyarrow.csv.read_csv`` on one thread. Only the ratio
means much: these machines vary severalfold from day to day. ``--repeat N``
takes turns N times.

With ``--distribution-sizes``, the cost of sharing a version through the
database (``dataset_distribution = "database"``) on a throwaway PostgreSQL
cluster with fsync on: the same import with and without storing the copy (the
baseline), and the time a node without the files takes to fetch, verify and
map it (``datasets.distribution.ensure_local`` plus the table's load).

Run by hand: ``python bench/ported.py [--sizes 1000000 10000000 100000000] [--import-sizes 1000000]
[--repeat 2] [--distribution-sizes 10000000]`` (100M rows: a 1.9 GB file in the temporary directory)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from numlookup.numbering.operator_data import DataNetwork, PortedMap

NETWORKS = [DataNetwork(m) for m in ("26201", "26202", "26203", "26207")]
BATCH = 1_000_000


def _numbers(count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 491500000000 + rng.integers(0, 10**10, count, dtype=np.int64)


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(size: int, folder: Path) -> None:
    keys = _numbers(size, 1)
    values = np.random.default_rng(2).integers(0, len(NETWORKS), size, dtype=np.uint16)
    started = time.perf_counter()
    table = PortedMap.build(keys, values, NETWORKS)
    build_s = time.perf_counter() - started
    table.save(folder)
    stored = sum(p.stat().st_size for p in folder.iterdir())
    del table, keys, values

    before = _rss_mb()
    started = time.perf_counter()
    loaded = PortedMap.load(folder)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    checksum = int(np.asarray(loaded.keys[::512]).sum()) + int(np.asarray(loaded.values[::2048]).sum())
    touch_s = time.perf_counter() - started
    resident = (_rss_mb() - before) * 2**20

    rng = np.random.default_rng(3)
    hits = np.asarray(loaded.keys)[rng.integers(0, len(loaded), BATCH // 2)]
    probe = np.concatenate([hits, _numbers(BATCH // 2, 4)])
    rng.shuffle(probe)
    loaded.lookup(probe[:1000])
    started = time.perf_counter()
    found = loaded.lookup(probe)
    lookup_s = time.perf_counter() - started
    rate = BATCH / lookup_s

    dict_rate = None
    if size <= 10_000_000:
        as_dict = dict(zip(np.asarray(loaded.keys).tolist(), np.asarray(loaded.values).tolist(), strict=True))
        probe_list = probe.tolist()
        started = time.perf_counter()
        _ = [as_dict.get(k, -1) for k in probe_list]
        dict_rate = BATCH / (time.perf_counter() - started)
        del as_dict
    print(
        f"{size:>12,}  build {build_s:6.2f}s  stored {stored / size:5.2f} B/number  "
        f"load {load_s * 1000:7.2f} ms (mmap) + {touch_s:5.2f}s to touch  resident {resident / size:5.2f} B/number  "
        f"lookups {rate / 1e6:6.2f} M/s (hits {int((found >= 0).sum()):,})"
        + (
            f"  dict {dict_rate / 1e6:5.2f} M/s  ratio {rate / dict_rate:4.1f}x"
            if dict_rate
            else "  dict: skipped (too large)"
        )
        + f"  [{checksum % 7}]"
    )


def write_csv(size: int, csv_path: Path) -> None:
    """``number,mccmnc`` lines (12 + 5 digits), written a million at a time from digit matrices: fast at 100M."""
    keys = _numbers(size, 5)
    nets = np.array([26201, 26202, 26203, 26207], dtype=np.int64)[np.random.default_rng(6).integers(0, 4, size)]
    with csv_path.open("wb") as fh:
        for i in range(0, size, 1_000_000):
            rows = np.empty((len(keys[i : i + 1_000_000]), 19), dtype=np.uint8)
            for value, first, width in ((keys[i : i + 1_000_000], 0, 12), (nets[i : i + 1_000_000], 13, 5)):
                for digit in range(width - 1, -1, -1):
                    rows[:, first + digit] = ord("0") + value % 10
                    value = value // 10
            rows[:, 12], rows[:, 18] = ord(","), ord("\n")
            fh.write(rows.tobytes())


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, float | None]:
    """Wall seconds of one whole process, and its peak RSS in MB (from /usr/bin/time, where there is one)."""
    timed = Path("/usr/bin/time").exists()
    if timed:
        command = ["/usr/bin/time", "-f", "PEAK_KB=%M", *command]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    peak = next((line.split("=")[1] for line in done.stderr.splitlines() if line.startswith("PEAK_KB=")), None)
    return elapsed, int(peak) / 1024 if peak else None


# The reference a new user would compare with: a whole Python process that only parses the file, one thread.
REFERENCE = "import sys, pyarrow.csv as c; c.read_csv(sys.argv[1], read_options=c.ReadOptions(use_threads=False))"


def measure_import(size: int, folder: Path, repeat: int) -> None:
    """``numlookup data import-ported`` end to end against the parse-only reference, in turns, same run."""
    csv_path = folder / "ported.csv"
    write_csv(size, csv_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMLOOKUP_")}
    env["NUMLOOKUP_DATA_DIR"] = str(folder / "data")
    # An import opens, never creates, the database.
    subprocess.run([sys.executable, "-m", "numlookup", "db", "upgrade"], env=env, check=True, capture_output=True)
    command = [sys.executable, "-m", "numlookup", "data", "import-ported", str(csv_path), "--json"]
    for turn in range(1, repeat + 1):
        reference, reference_peak = _timed([sys.executable, "-c", REFERENCE, str(csv_path)], env)
        elapsed, peak = _timed(command, env)
        shown = f"peak RSS {peak:,.0f} MB" if peak else "peak RSS unknown (no /usr/bin/time)"
        shown_reference = f", peak RSS {reference_peak:,.0f} MB" if reference_peak else ""
        print(
            f"import {size:>12,} rows, turn {turn}: numlookup data import-ported {elapsed:6.2f}s "
            f"({size / elapsed:,.0f} rows/s, {shown}); reference pyarrow.csv.read_csv, one thread, "
            f"whole process {reference:6.2f}s{shown_reference}; ratio {elapsed / reference:4.1f}x"
        )


def measure_distribution(size: int, folder: Path, database_url: str) -> None:
    """Import with and without a copy in the database, then a fetch by a node that has no files."""
    from numlookup.datasets import catalog, distribution
    from numlookup.store import make_engine, upgrade

    csv_path = folder / "ported.csv"
    write_csv(size, csv_path)
    engine = make_engine(database_url)
    upgrade(engine)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NUMLOOKUP_")}
    env["NUMLOOKUP_DATABASE_URL"] = database_url
    seconds: dict[str, float] = {}
    for mode in ("files", "database"):
        env["NUMLOOKUP_DATA_DIR"] = str(folder / f"importer-{mode}")
        env["NUMLOOKUP_DATASET_DISTRIBUTION"] = mode
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "numlookup", "data", "import-ported", str(csv_path), "--json"],
            env=env,
            check=True,
            capture_output=True,
        )
        seconds[mode] = time.perf_counter() - started
    version = catalog.active_versions(engine)["ported"]
    stored = sum(p.stat().st_size for p in catalog.dataset_folder(folder / "importer-database", version).iterdir())
    started = time.perf_counter()
    fetched = distribution.ensure_local(engine, folder / "new-node", version)
    table = PortedMap.load(fetched)
    fetch_s = time.perf_counter() - started
    assert len(table) == version.rows
    engine.dispose()
    extra = seconds["database"] - seconds["files"]
    print(
        f"distribution {size:>12,} rows ({stored / 1e6:,.0f} MB of files): "
        f"import {seconds['files']:6.1f}s without the copy, "
        f"{seconds['database']:6.1f}s with it "
        f"(+{extra:.1f}s, {stored / 1e6 / max(extra, 1e-9):,.0f} MB/s into PostgreSQL); "
        f"fetch, verify and load on a node without the files {fetch_s:5.1f}s ({stored / 1e6 / fetch_s:,.0f} MB/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000_000, 10_000_000])
    parser.add_argument("--import-sizes", type=int, nargs="*", default=[1_000_000])
    parser.add_argument("--distribution-sizes", type=int, nargs="*", default=[])
    parser.add_argument("--repeat", type=int, default=1, help="import turns per size (same run: ratios compare)")
    args = parser.parse_args()
    print(
        "PortedMap: int64 keys + uint16 network index, sorted, searchsorted; "
        "baseline: a Python dict of the same numbers"
    )
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as tmp:
            measure(size, Path(tmp))
    for size in args.import_sizes:
        with tempfile.TemporaryDirectory() as tmp:
            measure_import(size, Path(tmp), args.repeat)
    if args.distribution_sizes:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from server import start_postgres  # bench/server.py: the same durable throwaway cluster

        cluster = start_postgres()
        try:
            for size in args.distribution_sizes:
                with tempfile.TemporaryDirectory() as tmp:
                    measure_distribution(size, Path(tmp), cluster.create_database())
        finally:
            cluster.stop()


if __name__ == "__main__":
    main()
