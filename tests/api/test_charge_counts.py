"""``api.lookup._counts``: a sync charge's numbers by answer class, as the ledger row records them.

Its shortcuts (no set of invalid inputs when every input is a distinct valid number;
one shared ``Counts`` per offline pair) must count what the plain rule counts.
"""

from __future__ import annotations

import itertools

from numlookup.api.lookup import _counts
from numlookup.billing.ledger import Counts
from numlookup.billing.prices import ChargeClass
from numlookup.numbering import Resolver
from numlookup.numbering.models import Resolution

INPUTS = ["+37251000001", "+4915112345678", "not a number", "+999", "+37251000001", "+1", "+4915112345678"]


def _plain(resolutions: list[Resolution], classes: dict[str, ChargeClass]) -> Counts:
    valid = {r.e164 for r in resolutions if r.valid and r.e164 is not None}
    cached = sum(c == "cache" for c in classes.values())
    live = sum(c == "live" for c in classes.values())
    invalid = len({r.input for r in resolutions if not (r.valid and r.e164 is not None)})
    return Counts(offline=len(valid) - cached - live, cached=cached, live=live, invalid=invalid)


def test_the_counts_are_the_plain_rules_for_every_mix() -> None:
    resolver = Resolver()
    for size in range(len(INPUTS) + 1):
        for inputs in itertools.combinations(INPUTS, size):
            resolutions = resolver.resolve(list(inputs))
            valid = {r.e164: r for r in resolutions if r.valid and r.e164 is not None}
            mixes: list[dict[str, ChargeClass]] = [
                {},
                {number: "live" for number in list(valid)[:1]},
                dict.fromkeys(valid, "cache"),
            ]
            for classes in mixes:
                assert _counts(valid, classes, resolutions) == _plain(resolutions, classes), (inputs, classes)
