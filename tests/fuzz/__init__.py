"""Property-based fuzzers, bounded by example count so `make test` stays quick and repeatable."""

from hypothesis import HealthCheck, settings

FUZZ = settings(
    max_examples=500,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
