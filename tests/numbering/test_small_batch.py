"""The one-number-at-a-time path of small batches answers exactly as the columnar path.

``Resolver.resolve`` takes ``resolve_small`` for batches of up to ``SMALL_BATCH``
distinct numbers and ``resolve_columns`` for the rest (and for whatever the small
path leaves to the arrays). Both read the same tables, so every number of the
seeded corpus (every region, every type, their neighbours, invalid input), every
region's example numbers, and numbers with imported ranges and ported entries
must come out the same ``Resolution`` either way, and render to the same bytes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import msgspec
import numpy as np
import phonenumbers
import pytest

from numlookup.numbering import Resolver
from numlookup.numbering.intervals import pad_high, pad_low
from numlookup.numbering.operator_data import DataNetwork, OperatorData, PortedMap, RangeMap
from numlookup.numbering.resolver import SMALL_BATCH
from numlookup.results import number_result
from tests.corpus import long_numbers, rewritten_numbers, sample_corpus


@pytest.fixture(scope="module")
def resolver() -> Resolver:
    return Resolver()


def _examples() -> list[str]:
    """Every region's example number of every type, in E.164 and as clients spell it (spaces, 00, no +)."""
    numbers = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in range(11):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
                spaced = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
                numbers += [e164, spaced, "00" + e164[1:], e164[1:]]
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        example = phonenumbers.example_number_for_non_geo_entity(code)
        if example is not None:
            numbers.append(phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164))
    return numbers


def _corpus() -> list[str]:
    inputs, hints = sample_corpus(20_000, seed=14)
    return [raw for raw, hint in zip(inputs, hints, strict=True) if hint is None] + _examples()


def _assert_agree(resolver: Resolver, numbers: Sequence[str]) -> int:
    """Each number alone through the small path against the whole list through the arrays; how many it took."""
    columns = resolver.resolve_columns(numbers)
    taken = 0
    for i, raw in enumerate(numbers):
        small = resolver.resolve_small([raw])
        if small is None:
            continue
        taken += 1
        expected = columns.resolution(i)
        assert small == [expected], raw
        rendered = msgspec.json.encode(number_result(small[0], "seed", "2026-01-01T00:00:00.000Z"))
        assert rendered == msgspec.json.encode(number_result(expected, "seed", "2026-01-01T00:00:00.000Z")), raw
    return taken


def test_every_corpus_number_resolves_alike(resolver: Resolver) -> None:
    numbers = _corpus()
    taken = _assert_agree(resolver, numbers)
    # The lever is in use: nearly all of this E.164-shaped corpus is decided by the tables.
    assert taken > 0.9 * len(numbers)


def test_invalid_and_odd_inputs_resolve_alike_or_go_to_the_arrays(resolver: Resolver) -> None:
    odd = ["", "+", "+0", "+1", "+12", "+123", "hello", "+abc", "+٣٧٢٥١٠٠٠٠٠١", "+" + "9" * 16, "+" + "9" * 15]
    odd += ["+372\n51000001", "+999123456", "+37251", "+3725100000000000", "+800 1234 5678", "+88213"]
    _assert_agree(resolver, odd)
    assert resolver.resolve_small(["hello"]) is None  # not "+" and digits: phonenumbers decides, via the arrays
    assert resolver.resolve_small(["+12"]) is not None  # too short to parse: the tables know


def test_operator_ranges_and_ported_numbers_resolve_alike(resolver: Resolver) -> None:
    """Imported ranges over some prefixes, ported entries (some back to their own range holder) over some numbers."""
    numbers = [n for n in _corpus() if n.startswith("+")]
    valid = [r for r in resolver.resolve_columns(numbers).batch.digits.tolist() if r]
    rng = random.Random(14)
    networks = [DataNetwork("24801", "Telia (imported)"), DataNetwork("24802"), DataNetwork("26203", None)]
    prefixes = sorted({str(d)[:5] for d in rng.sample(valid, 200)})
    intervals = np.array([[pad_low(p), pad_high(p), i] for i, p in enumerate(prefixes)], dtype=np.int64)
    ranges = RangeMap.compile(intervals, np.array([i % 3 for i in range(len(prefixes))], dtype=np.int32), networks)
    moved = sorted(set(rng.sample(valid, 2_000)))
    ported = PortedMap.build(
        np.array(moved, dtype=np.int64), np.array([i % 3 for i in range(len(moved))], dtype=np.uint16), networks
    )
    moved_inputs = [f"+{d}" for d in moved[:3000]]
    for operator in (OperatorData(ranges=ranges), OperatorData(ported=ported), OperatorData(ranges, ported)):
        with_data = Resolver(operator=operator, plan=resolver.plan, networks=resolver.networks)
        taken = _assert_agree(with_data, numbers[:4000] + moved_inputs)
        assert taken > 0.9 * (4000 + len(moved_inputs))
    # The comparison above covered ported answers, not only numbers the map does not hold.
    with_ported = Resolver(operator=OperatorData(ported=ported), plan=resolver.plan, networks=resolver.networks)
    answers = [with_ported.resolve_small([raw]) for raw in moved_inputs[:500]]
    assert sum(1 for a in answers if a is not None and a[0].ported) > 100


def test_a_small_batch_with_duplicates_and_invalid_numbers_answers_as_the_arrays(resolver: Resolver) -> None:
    batch = ["+37251000001", "hello", "+37251000001", "+4915112345678", "372 5100 0001", "+999", "+447912345678"]
    assert len(set(batch)) <= SMALL_BATCH
    columns = resolver.resolve_columns(batch)
    assert resolver.resolve(batch) == [columns.resolution(i) for i in range(len(batch))]
    valid = batch[:1] + batch[3:4] + batch[6:]
    assert resolver.resolve_small(valid) == [columns.resolution(i) for i in (0, 3, 6)]


def test_a_batchs_resolutions_read_at_once_are_its_rows_one_by_one(resolver: Resolver) -> None:
    """``Columns.resolutions`` (lists read once, for large batches) against ``Columns.resolution`` per row."""
    inputs, hints = sample_corpus(5_000, seed=15)
    numbers = [raw for raw, hint in zip(inputs, hints, strict=True) if hint is None] + _examples()[:2000]
    numbers += ["+4412345678901234567", "+372 1234 5678 9012 3456", "+12345678901234567890"]  # past int64
    moved = [int(n[1:]) for n in numbers[:3000:7] if n[1:].isdigit() and len(n) < 17]
    ported = PortedMap.build(
        np.array(sorted(set(moved)), dtype=np.int64),
        np.array([i % 2 for i in range(len(set(moved)))], dtype=np.uint16),
        [DataNetwork("24801"), DataNetwork("24802", "Elisa (imported)")],
    )
    for operator in (OperatorData(), OperatorData(ported=ported)):
        columns = Resolver(operator=operator, plan=resolver.plan).resolve_columns(numbers)
        assert columns.batch.long_e164  # the corpus holds parsed numbers too long for int64
        assert columns.resolutions() == [columns.resolution(i) for i in range(len(columns))]


def test_rewritten_national_prefixes_and_seventeen_digit_keys_resolve_alike(resolver: Resolver) -> None:
    """The tables' rewrites of transform-rule prefixes (+54, +55, +261, ...) and 16–17-digit keys, one by one.

    The small path repeats ``NumberingPlan._fast``'s rewrite arithmetic in Python
    integers; these are the numbers whose answer depends on it.
    """
    numbers = rewritten_numbers(18) + long_numbers(4)
    taken = _assert_agree(resolver, numbers)
    rewritten = [n for n in numbers if (small := resolver.resolve_small([n])) and small[0].e164 not in (None, n)]
    assert len(rewritten) > 100  # the rewrite itself is exercised, not only numbers that skip it
    assert taken > 0.9 * len(numbers)
