"""The retry schedule of Standard Webhooks, with jitter: a pure function, so its bounds can be tested.

The specification's example schedule: at once, then after 5 s, 5 min, 30 min,
2 h, 5 h, 10 h, 14 h, 20 h and 24 h (ten attempts over about 3 days). Each
wait is stretched or shrunk by up to ``JITTER`` (10 %), so receivers that came
back after an outage are not hit by every sender's retries in the same second.
A ``scale`` below 1 shortens every wait for tests; production uses 1.
"""

from __future__ import annotations

import random
from datetime import timedelta

# The wait before attempt 1, 2, … (attempt 1 is immediate).
SCHEDULE: tuple[timedelta, ...] = (
    timedelta(0),
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=24),
)
ATTEMPTS = len(SCHEDULE)
JITTER = 0.1
# A receiver's Retry-After is honoured up to the schedule's longest wait: it may not park a delivery for weeks.
RETRY_AFTER_MAX = max(SCHEDULE)


def next_delay(
    attempts_made: int, *, scale: float = 1.0, retry_after: float | None = None, rng: random.Random | None = None
) -> timedelta | None:
    """How long to wait before the next attempt after ``attempts_made`` failed ones; None when none is left.

    ``retry_after`` (seconds, from a 429 or 503) is a floor: the next attempt is
    never sooner than the receiver asked, nor later than ``RETRY_AFTER_MAX`` on its account.
    """
    if attempts_made < 1:
        raise ValueError("attempts_made counts failed attempts: at least 1")
    if attempts_made >= ATTEMPTS:
        return None
    base = SCHEDULE[attempts_made] * scale
    factor = 1.0 + (rng or random).uniform(-JITTER, JITTER)
    delay = base * factor
    if retry_after is not None and retry_after > 0:
        delay = max(delay, min(timedelta(seconds=retry_after), RETRY_AFTER_MAX))
    return delay
