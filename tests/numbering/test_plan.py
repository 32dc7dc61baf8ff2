"""The compiled plan must answer exactly as phonenumbers does, number by number.

Why: the plan replaces libphonenumber's regexes with interval tables built
from them; a single mis-painted interval would silently change validity, type,
region or carrier for a whole range. So the suite compares every field on a
seeded corpus over every region, and checks the regex expansion it rests on
against ``re.fullmatch`` itself.
"""

from __future__ import annotations

import bisect
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import phonenumbers
import pytest

from numlookup.numbering import compiler, patterns
from numlookup.numbering.layout import REASONS
from numlookup.numbering.models import InvalidReason
from numlookup.numbering.plan import NumberingPlan
from numlookup.numbering.reference import reference
from tests.corpus import long_numbers, rewritten_numbers, sample_corpus

CORPUS_SIZE = 60_000


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("plan-cache")


@pytest.fixture(scope="module")
def plan(cache_dir: Path) -> NumberingPlan:
    return NumberingPlan.load(cache_dir)


# --------------------------------------------------------------------------- patterns


@pytest.mark.parametrize(
    ("pattern", "lengths"),
    [
        (r"[2-9]\d{9}", (10,)),
        (r"7(?:[1-57-9]\d|6[0-8])\d{6}", (9,)),
        (r"(?:0|80?)\d{2,3}", (3, 4, 5)),
        (r"1(?:[0-35-9]\d|4[0-8])\d{3,5}|2\d{4}", (5, 6, 7, 8)),
        (r"[^0]\d", (2,)),
        (r"(?:9[1-9]|[1-8]\d)?\d{4}", (4, 5, 6)),
    ],
)
def test_full_match_intervals_answer_like_fullmatch(pattern: str, lengths: tuple[int, ...]) -> None:
    expanded = patterns.full_match_intervals(pattern, lengths)
    rng = random.Random(7)
    for n in lengths:
        exhaustive = range(10**n) if n <= 5 else [rng.randrange(10**n) for _ in range(20_000)]
        assert patterns.check(pattern, n, expanded[n], exhaustive) == []


def test_prefix_intervals_answer_like_match() -> None:
    pattern = r"6(?:[2-7]\d|99)|[89]"
    expanded = patterns.prefix_intervals(pattern, (2, 3, 4))
    for n in (2, 3, 4):
        starts = [lo for lo, _ in expanded[n]]
        for value in range(10**n):
            s = str(value).zfill(n)
            i = bisect.bisect_right(starts, value) - 1
            inside = i >= 0 and value <= expanded[n][i][1]
            assert inside == bool(re.match(pattern, s)), s


def test_literal_strings_keep_the_order_re_tries_them() -> None:
    assert patterns.literal_strings(r"0|80?", 5) == [("0", False), ("80", False), ("8", False)]
    assert patterns.literal_strings(r"(?:003768)0?|0", 8)[:2] == [("0037680", False), ("003768", False)]
    assert patterns.literal_strings(r"([89]\d)$", 3)[0] == ("80", True)


def test_unsupported_constructs_are_too_complex() -> None:
    with pytest.raises(patterns.TooComplex):
        patterns.full_match_intervals(r"(?=1)\d{3}", (3,))
    with pytest.raises(patterns.TooComplex):
        patterns.full_match_intervals(r"\d{15}[13579]{6}", (21,))


def test_every_metadata_pattern_expands_like_the_regex() -> None:
    """Every type pattern of every region, on random and boundary samples of each possible length."""
    rng = random.Random(11)
    names = (
        "general_desc",
        "fixed_line",
        "mobile",
        "toll_free",
        "premium_rate",
        "shared_cost",
        "personal_number",
        "voip",
        "pager",
        "uan",
        "voicemail",
    )
    checked = 0
    for cc, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        for region in regions:
            md = (
                phonenumbers.PhoneMetadata.metadata_for_nongeo_region(cc)
                if region == "001"
                else phonenumbers.PhoneMetadata.metadata_for_region(region)
            )
            for name in names:
                desc = getattr(md, name)
                if desc is None or not desc.national_number_pattern:
                    continue
                lengths = tuple(n for n in desc.possible_length if 0 < n <= 15)
                expanded = patterns.full_match_intervals(desc.national_number_pattern, lengths)
                for n in lengths:
                    edges = [v for lo, hi in expanded[n][:30] for v in (lo - 1, lo, hi, hi + 1) if 0 <= v < 10**n]
                    samples = edges + [rng.randrange(10**n) for _ in range(20)]
                    assert patterns.check(desc.national_number_pattern, n, expanded[n], samples) == [], (region, name)
                    checked += 1
    assert checked > 1000


# --------------------------------------------------------------------------- plan


def test_agrees_with_phonenumbers_on_every_number(plan: NumberingPlan) -> None:
    numbers, hints = sample_corpus(CORPUS_SIZE, seed=99)
    assert len({h for h in hints if h}) > 100  # national formats from many regions
    result = plan.resolve_e164(numbers, hints)
    disagreements = []
    for i, (raw, hint) in enumerate(zip(numbers, hints, strict=True)):
        expected = reference(raw, hint)
        got = result.row(i)
        if got != expected:
            disagreements.append(f"{raw!r} (hint {hint}): plan {got} phonenumbers {expected}")
    assert not disagreements, f"{len(disagreements)} of {len(numbers)} disagree; first:\n" + "\n".join(
        disagreements[:20]
    )
    covered = {result.regions[r] for r in result.region[result.valid].tolist()}
    assert len(covered) >= 230  # valid numbers of (nearly) every region were exercised
    assert result.slow < 0.08 * len(numbers)  # non-E.164 input and the rare undecidable number


def test_e164_input_is_decided_by_the_tables(plan: NumberingPlan) -> None:
    numbers, hints = sample_corpus(20_000, seed=5)
    e164 = [n for n, h in zip(numbers, hints, strict=True) if h is None and re.fullmatch(r"\+[0-9]{3,15}", n)]
    before = plan.stats.slow
    result = plan.resolve_e164(e164)
    assert result.slow < 0.01 * len(e164)
    assert plan.stats.slow - before == result.slow
    assert 0 <= plan.stats.slow_share <= 1


def test_sixteen_and_seventeen_digits_are_decided_by_the_tables_as_phonenumbers_does(plan: NumberingPlan) -> None:
    """The tables key numbers of up to 17 digits: a digit too many, or a national prefix kept, is no slow path.

    Calling codes whose national prefix is rewritten by a transform rule still
    go to phonenumbers where that prefix can match; every other such number is
    the tables' to answer, and exactly as phonenumbers does.
    """
    numbers = long_numbers(3)
    result = plan.resolve_e164(numbers)
    wrong = [(raw, result.row(i), reference(raw)) for i, raw in enumerate(numbers) if result.row(i) != reference(raw)]
    assert not wrong, f"{len(wrong)} of {len(numbers)} disagree; first: {wrong[:5]}"
    assert int(result.valid.sum()) > 50  # national prefixes stripped to a valid number
    assert {REASONS[c] for c in result.reason.tolist()} >= {None, InvalidReason.TOO_LONG}
    transformed = set()
    for cc, regions in phonenumbers.COUNTRY_CODE_TO_REGION_CODE.items():
        md = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(cc, regions[0])
        if md is not None and md.national_prefix_transform_rule:
            transformed.add(cc)
    plain = [raw for raw in numbers if not any(raw.startswith(f"+{cc}") for cc in transformed)]
    assert len(plain) > 0.9 * len(numbers)
    assert plan.resolve_e164(plain).slow == 0


def test_national_prefixes_a_transform_rule_rewrites_are_decided_by_the_tables(plan: NumberingPlan) -> None:
    """+54 0 11 15…, +55 0 21 …, +261 20…, +378 0549…, +672 3…: rewritten by the tables as parse rewrites them."""
    numbers = rewritten_numbers(17)
    result = plan.resolve_e164(numbers)
    wrong = [(raw, result.row(i), reference(raw)) for i, raw in enumerate(numbers) if result.row(i) != reference(raw)]
    assert not wrong, f"{len(wrong)} of {len(numbers)} disagree; first: {wrong[:5]}"
    assert result.slow == 0
    assert int(result.valid.sum()) > 100
    rewritten = sum(1 for i, raw in enumerate(numbers) if result.e164(i) not in (None, raw))
    assert rewritten > 100  # the national number was changed, not just read


def test_the_slow_path_names_carriers_from_the_table_without_phonenumbers_carrier_data(
    plan: NumberingPlan, cache_dir: Path
) -> None:
    """Text inputs are read by phonenumbers, their carrier named by the table: the same names, no carrier data loaded.

    In a fresh interpreter (this one has long imported ``phonenumbers.carrier``).
    """
    texts = ["(+372) 5100-0001", "+372 5100 0001 ext. 12", "tel:+441234567890", "+1-800-FLOWERS", "+44 7912 345678"]
    expected = [reference(raw) for raw in texts]
    assert {r.carrier for r in expected} > {""}  # some are named
    script = (
        "import json, sys; from pathlib import Path; from numlookup.numbering.plan import NumberingPlan; "
        f"plan = NumberingPlan.load(Path({str(cache_dir)!r})); batch = plan.resolve_e164({texts!r}); "
        "print(json.dumps([[batch.row(i).carrier for i in range(len(batch))], batch.slow, "
        "'phonenumbers.carrier' in sys.modules]))"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    carriers, slow, loaded = json.loads(done.stdout)
    assert carriers == [r.carrier for r in expected] and slow == len(texts)
    assert loaded is False
    result = plan.resolve_e164(texts)
    assert [result.row(i) for i in range(len(texts))] == expected


def test_known_numbers(plan: NumberingPlan) -> None:
    result = plan.resolve_e164(["+37251000001", "+447712345678", "+12025550123", "+999123", "+3931234", "nonsense"])
    assert result.valid.tolist() == [True, True, True, False, False, False]
    assert result.row(0).region == "EE" and result.row(0).carrier == "Telia Eesti AS"
    assert result.row(1).number_type == phonenumbers.PhoneNumberType.MOBILE
    assert result.row(2).number_type == phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE
    assert [REASONS[c] for c in result.reason[3:].tolist()] == [
        InvalidReason.INVALID_COUNTRY_CODE,
        InvalidReason.TOO_SHORT,
        InvalidReason.NOT_A_NUMBER,
    ]
    assert result.e164(1) == "+447712345678" and result.e164(5) is None
    assert result.slow == 1


def test_national_prefix_after_calling_code_is_stripped_like_parse(plan: NumberingPlan) -> None:
    """``+44 0 7712…`` parses as ``+44 7712…``: the plan must report that E.164, not the input."""
    result = plan.resolve_e164(["+4407712345678"])
    assert result.slow == 0
    assert result.e164(0) == "+447712345678" and bool(result.valid[0])


def test_cache_round_trip(plan: NumberingPlan, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (cache_dir / NumberingPlan.cache_name()).exists()

    def no_compiling() -> None:
        raise AssertionError("the plan was compiled again instead of read from its cache")

    # What proves the cache answered: with compiling impossible, the load still succeeds.
    monkeypatch.setattr(compiler, "compile_plan", no_compiling)
    again = NumberingPlan.load(cache_dir)
    sample = ["+37251000001", "+4915112345678", "+8613812345678", "+80012345678"]
    a, b = plan.resolve_e164(sample), again.resolve_e164(sample)
    assert [a.row(i) for i in range(4)] == [b.row(i) for i in range(4)]
    assert np.array_equal(a.carrier, b.carrier)


def test_empty_batch(plan: NumberingPlan) -> None:
    result = plan.resolve_e164([])
    assert len(result) == 0 and result.slow == 0
