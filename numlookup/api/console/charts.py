"""The usage charts' JSON, one shape for the account holder's charts and the operator's.

``console.js`` draws it with uPlot: ``x`` (each bucket's start, Unix seconds)
and one series per figure. Credits are exact: ``credits_micros`` in integers,
and ``credits`` as decimals the console's encoder writes as JSON numbers with no
binary rounding (``0.05``, never ``0.05000000000000000277``).
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from numlookup.billing import format_amount
from numlookup.billing.rollup import UsageBucket


def chart_data(buckets: Sequence[UsageBucket]) -> dict[str, object]:
    numbers = [b.offline + b.cached + b.live + b.invalid for b in buckets]
    return {
        "x": [int(b.start.timestamp()) for b in buckets],
        "series": {
            "requests": [b.requests for b in buckets],
            "offline": [b.offline for b in buckets],
            "cached": [b.cached for b in buckets],
            "live": [b.live for b in buckets],
            "invalid": [b.invalid for b in buckets],
            "credits": [Decimal(format_amount(b.credits)) for b in buckets],
            "credits_micros": [b.credits for b in buckets],
            # Per cent of the numbers asked that were INVALID (0 where none were asked).
            "invalid_share": [round(100 * b.invalid / n, 2) if n else 0 for b, n in zip(buckets, numbers, strict=True)],
        },
    }
