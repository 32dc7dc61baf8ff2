"""``api.lookup.outcomes``: a request's answers as ``numlookup_lookups`` counts them, classed once per word."""

from __future__ import annotations

import itertools
from collections import Counter

from numlookup.api.lookup import offline_outcomes, outcomes
from numlookup.numbering import Resolver
from numlookup.results import NumberResult, number_result
from numlookup.status import STATUS_STYLES, outcome, status_word


def _result(status: str, source: str) -> NumberResult:
    return NumberResult("+37251000001", status, None, None, None, None, None, None, "2026-01-01T00:00:00.000Z", source)


def test_the_counts_are_each_answers_outcome_and_source_in_every_style() -> None:
    words = [
        status_word(valid, reachable, style)
        for style in STATUS_STYLES
        for valid, reachable in ((False, None), (True, None), (True, True), (True, False))
    ]
    sources = ["offline", "cache", "upstream:one"]
    result = [_result(word, source) for word, source in itertools.product(words, sources)]
    result += [_result(words[2], "offline")] * 7  # the usual request: most answers alike
    expected = Counter((outcome(item.status), item.source) for item in result)
    assert outcomes(result) == dict(expected)
    assert {name for name, _ in outcomes(result)} == {"invalid", "unknown", "online", "offline"}
    assert outcomes([]) == {}


def test_an_offline_answers_counts_are_its_results_in_every_style() -> None:
    """``offline_outcomes`` (an answer without live results) counts what ``outcomes`` counts of its results."""
    resolver = Resolver()
    inputs = ["+37251000001", "+4915112345678", "not a number", "+999", "+37251000001", "+1"]
    resolutions = resolver.resolve(inputs)
    invalid = sum(not r.valid for r in resolutions)
    assert 0 < invalid < len(resolutions)
    for style in STATUS_STYLES:
        for some in (resolutions, resolutions[:1], resolutions[2:4], []):
            result = [number_result(r, style, "2026-01-01T00:00:00.000Z") for r in some]
            assert offline_outcomes(len(some), sum(not r.valid for r in some)) == outcomes(result)
