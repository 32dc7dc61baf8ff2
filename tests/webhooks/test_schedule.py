"""The retry schedule is the specification's, each wait within its jitter, and ten attempts in all."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from numlookup.webhooks.schedule import ATTEMPTS, JITTER, RETRY_AFTER_MAX, SCHEDULE, next_delay

SPEC = [
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=24),
]


def test_the_schedule_is_the_specifications() -> None:
    assert SCHEDULE == (timedelta(0), *SPEC)
    assert ATTEMPTS == 10
    assert sum(SCHEDULE, timedelta()) == timedelta(hours=75, minutes=35, seconds=5)


@pytest.mark.parametrize("seed", range(20))
def test_each_wait_is_within_its_jitter(seed: int) -> None:
    rng = random.Random(seed)
    for failed, wait in enumerate(SPEC, start=1):
        delay = next_delay(failed, rng=rng)
        assert delay is not None
        assert wait * (1 - JITTER) <= delay <= wait * (1 + JITTER)


def test_jitter_spreads_the_waits() -> None:
    rng = random.Random(1)
    assert len({next_delay(1, rng=rng) for _ in range(50)}) > 40


def test_after_the_tenth_attempt_none_is_left() -> None:
    assert next_delay(ATTEMPTS) is None
    assert next_delay(ATTEMPTS - 1) is not None
    with pytest.raises(ValueError):
        next_delay(0)


def test_the_scale_shortens_every_wait_for_tests() -> None:
    rng = random.Random(2)
    delay = next_delay(2, scale=0.001, rng=rng)
    assert delay is not None and timedelta(minutes=5) * 0.001 * 0.9 <= delay <= timedelta(minutes=5) * 0.001 * 1.1


def test_retry_after_is_a_floor_bounded_by_the_longest_wait() -> None:
    rng = random.Random(3)
    assert next_delay(1, retry_after=120, rng=rng) == timedelta(seconds=120)  # later than the schedule's 5 s
    short = next_delay(2, retry_after=1, rng=rng)
    assert short is not None and short >= timedelta(minutes=5) * 0.9  # never sooner than the schedule
    assert next_delay(1, retry_after=10**9, rng=rng) == RETRY_AFTER_MAX
