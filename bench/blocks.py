"""What the shipped number blocks (``data/blocks.csv``) cost: loading them, and resolving with them.

Why: issue 13 added a block lookup to every batch (India's series, France's ARCEP blocks)
and a CSV read to every process start. The compiled numbering plan itself is unchanged
(blocks are a separate ``RangeMap``), so what to watch is (a) the seconds to read and
compile the blocks, beside the seconds to load the plan, and (b) the numbers per second
of ``resolve_columns`` with the shipped blocks against the same resolver with none, on one
corpus in the same run. It pins itself to one CPU core and is run by hand::

    python bench/blocks.py [--size 200000] [--seed 2024] [--repeat 5]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from numlookup.numbering import Resolver
from numlookup.numbering.blocks import ShippedBlocks, _shipped
from numlookup.numbering.plan import NumberingPlan
from tests.corpus import sample_corpus


def pin_one_core() -> str:
    """One core, as bench/numbering.py measures (bench scripts are run as files, not imported)."""
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"pinned to CPU {core}"
    return "not pinned (no sched_setaffinity)"


def rate(fn: Callable[[Sequence[str]], object], items: Sequence[str]) -> float:
    gc.collect()  # the previous run's garbage is not this run's cost
    start = time.perf_counter()
    fn(items)
    return len(items) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(pin_one_core())

    with tempfile.TemporaryDirectory() as tmp:
        NumberingPlan.load(Path(tmp))  # compiles and caches
        start = time.perf_counter()
        plan = NumberingPlan.load(Path(tmp))
        plan_seconds = time.perf_counter() - start
    loads = []
    for _ in range(args.repeat):
        _shipped.cache_clear()
        start = time.perf_counter()
        blocks = ShippedBlocks.shipped()
        loads.append(time.perf_counter() - start)
    block_seconds = min(loads)
    print(f"plan load (cached arrays): {plan_seconds * 1000:.1f} ms")
    print(f"blocks read + compile ({len(blocks)} blocks): {block_seconds * 1000:.1f} ms")
    print(f"  ratio blocks / plan load: {block_seconds / plan_seconds:.2f}")

    inputs, _ = sample_corpus(args.size, args.seed)
    numbers = [n for n in inputs if n.startswith("+")]
    with_blocks = Resolver(plan=plan, blocks=blocks)
    without = Resolver(plan=plan, blocks=ShippedBlocks(()))
    # Alternate the two, so that a neighbour's load on a shared machine hits both alike.
    rate_with = rate_without = 0.0
    for _ in range(args.repeat):
        rate_without = max(rate_without, rate(without.resolve_columns, numbers))
        rate_with = max(rate_with, rate(with_blocks.resolve_columns, numbers))
    print(f"resolve_columns, {len(numbers):,} E.164 inputs (best of {args.repeat}, alternating):")
    print(f"  without blocks: {rate_without:,.0f} numbers/s")
    print(f"  with blocks:    {rate_with:,.0f} numbers/s")
    print(f"  ratio with / without: {rate_with / rate_without:.3f}")


if __name__ == "__main__":
    main()
