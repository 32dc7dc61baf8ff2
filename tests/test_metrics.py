"""The request path's counts are written once per event-loop turn, summed; outside a loop at once."""

from __future__ import annotations

import asyncio

from numlookup.metrics import Metrics


def _sample(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_a_loop_turns_counts_are_written_together_right_after_it() -> None:
    metrics = Metrics()

    async def one_turn() -> tuple[float | None, float | None]:
        metrics.lookups_counted({("online", "offline"): 2, ("invalid", "offline"): 1})
        metrics.credits_charged(20_000)
        metrics.credits_charged(10_000)
        metrics.request_done("/v1/hlr/sync", "POST", 200, 0.003)
        during = _sample(metrics, "numlookup_lookups_total", status="online", source="offline")
        await asyncio.sleep(0)  # the turn ends: the flush it scheduled runs
        after = _sample(metrics, "numlookup_lookups_total", status="online", source="offline")
        return during, after

    during, after = asyncio.run(one_turn())
    assert not during  # not written yet, within the turn (0, or no sample at all)
    assert after == 2.0
    assert _sample(metrics, "numlookup_lookups_total", status="invalid", source="offline") == 1.0
    assert _sample(metrics, "numlookup_credits_spent_micros_total") == 30_000.0
    assert _sample(metrics, "numlookup_http_requests_total", route="/v1/hlr/sync", method="POST", status="200") == 1.0
    assert _sample(metrics, "numlookup_http_request_duration_seconds_count", route="/v1/hlr/sync") == 1.0
    assert _sample(metrics, "numlookup_http_request_duration_seconds_bucket", route="/v1/hlr/sync", le="0.005") == 1.0


def test_outside_a_loop_counts_are_written_at_once() -> None:
    metrics = Metrics()
    metrics.count(metrics.cache, "miss")
    metrics.credits_charged(7)
    assert _sample(metrics, "numlookup_live_cache_lookups_total", result="miss") == 1.0
    assert _sample(metrics, "numlookup_credits_spent_micros_total") == 7.0


def test_a_turns_latencies_land_in_the_buckets_and_sum_that_one_observe_each_makes() -> None:
    """``observe_all`` (one write per bucket) against ``Histogram.observe`` per value, on two registries.

    The values are binary fractions, so both sums are exact and must be equal;
    some sit exactly on a bucket's bound (``observe`` counts them in it), one is
    above every finite bound (+Inf), and one turn holds a single value.
    """
    batched, one_by_one = Metrics(), Metrics()
    turns = [[0.0009765625, 0.005, 0.25, 0.25, 0.5, 1.0, 2.5, 64.0, 0.0078125], [0.125]]

    async def run() -> None:
        for turn in turns:
            for value in turn:
                batched.request_done("/v1/hlr/sync", "POST", 200, value)
            await asyncio.sleep(0)  # the turn ends: the flush writes them together

    asyncio.run(run())
    for turn in turns:
        for value in turn:
            one_by_one.http_latency.labels("/v1/hlr/sync").observe(value)

    def samples(metrics: Metrics) -> list[tuple[str, dict[str, str], float]]:
        return [
            (s.name, s.labels, s.value)
            for family in metrics.registry.collect()
            if family.name == "numlookup_http_request_duration_seconds"
            for s in family.samples
            if not s.name.endswith("_created")
        ]

    expected = samples(one_by_one)
    assert [s for s in expected if s[0].endswith("_count")][0][2] == 10.0
    assert samples(batched) == expected


def test_each_requests_route_method_and_status_is_counted_in_a_loop_and_outside() -> None:
    """``request_done`` keeps each (route, method, status)'s children: every status still counts apart."""
    metrics = Metrics()
    done = [("/v1/hlr/sync", "POST", 200), ("/v1/hlr/sync", "POST", 401), ("/v1/hlr/sync", "POST", None)]

    async def in_a_loop() -> None:
        for route, method, status in done * 2:
            metrics.request_done(route, method, status, 0.001)
        await asyncio.sleep(0)

    asyncio.run(in_a_loop())
    for route, method, status in done:  # outside a loop: written at once
        metrics.request_done(route, method, status, 0.001)
    for shown in ("200", "401", "none"):
        labels = {"route": "/v1/hlr/sync", "method": "POST", "status": shown}
        assert _sample(metrics, "numlookup_http_requests_total", **labels) == 3.0
    assert _sample(metrics, "numlookup_http_request_duration_seconds_count", route="/v1/hlr/sync") == 9.0


def test_a_live_sources_requests_are_counted_by_outcome_and_timed_by_source() -> None:
    """``source_answered``: each outcome counted apart, one latency histogram per source, in a loop and outside."""
    metrics = Metrics()

    async def in_a_loop() -> float | None:
        metrics.source_answered("upstream:a", "ok", 0.2)
        metrics.source_answered("upstream:a", "error", 0.004)
        metrics.source_answered("upstream:b", "ok", 0.03)
        during = _sample(metrics, "numlookup_live_source_requests_total", source="upstream:a", outcome="ok")
        await asyncio.sleep(0)
        return during

    assert not asyncio.run(in_a_loop())  # with the turn's other events, after it
    metrics.source_answered("upstream:a", "ok", 0.2)  # outside a loop: written at once
    requests = "numlookup_live_source_requests_total"
    assert _sample(metrics, requests, source="upstream:a", outcome="ok") == 2.0
    assert _sample(metrics, requests, source="upstream:a", outcome="error") == 1.0
    assert _sample(metrics, requests, source="upstream:b", outcome="ok") == 1.0
    assert _sample(metrics, "numlookup_live_source_latency_seconds_count", source="upstream:a") == 3.0
    assert _sample(metrics, "numlookup_live_source_latency_seconds_bucket", source="upstream:a", le="0.005") == 1.0
    assert _sample(metrics, "numlookup_live_source_latency_seconds_sum", source="upstream:b") == 0.03
