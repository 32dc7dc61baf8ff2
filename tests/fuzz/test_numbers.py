"""Property-based fuzzing of number parsing: whatever a client sends, the resolver answers.

Why: every string in a request's ``numbers`` reaches ``Resolver.resolve`` unfiltered,
and the numbering plan takes its own fast path for E.164-shaped input. A crash there is a
500 for the whole request; a disagreement with libphonenumber is a wrong answer
that nobody notices. The agreement tests in ``tests/numbering`` check fixed
corpora; here Hypothesis looks for the inputs those corpora did not think of.

Each property runs a bounded number of examples (``max_examples``), derandomized
so a CI run is reproducible, with no per-example deadline: bounded by count, not time.
"""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import find, given
from hypothesis import strategies as st

from numlookup.numbering import Resolver
from numlookup.numbering.models import Resolution
from numlookup.numbering.resolver import shared_plan
from tests.fuzz import FUZZ

DIGITS = "0123456789"
# What clients put between digits ("+372 5100-0001", "(372) 5100.0001"); international_form removes them.
SEPARATORS = [" ", "-", ".", "(", ")", "\u00a0"]
CALLING_CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)


@pytest.fixture(scope="module")
def resolver() -> Resolver:
    return Resolver(plan=shared_plan())


# --------------------------------------------------------------------------- strategies


def _example_nationals() -> list[tuple[int, str]]:
    """(calling code, national number) of every region's example numbers: the seeds of valid input."""
    seeds = []
    for region in REGIONS:
        for number_type in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
            example = phonenumbers.example_number_for_type(region, number_type)
            if example is not None:
                seeds.append(
                    (phonenumbers.country_code_for_region(region), phonenumbers.national_significant_number(example))
                )
    return seeds


EXAMPLES = _example_nationals()


@st.composite
def near_valid_e164(draw: st.DrawFn) -> str:
    """An example number with its last digits redrawn, mostly at the same length.

    Valid often, invalid in interesting ways.
    """
    code, national = draw(st.sampled_from(EXAMPLES))
    keep = draw(st.integers(min_value=max(len(national) - 5, 0), max_value=len(national)))
    rest = len(national) - keep + draw(st.sampled_from([0, 0, 0, 0, -1, 1]))
    return f"+{code}{national[:keep]}{draw(st.text(DIGITS, min_size=max(rest, 0), max_size=max(rest, 0)))}"


@st.composite
def code_and_digits(draw: st.DrawFn) -> str:
    """A real calling code and 0-15 random digits: every country's plan, with any length."""
    return f"+{draw(st.sampled_from(CALLING_CODES))}{draw(st.text(DIGITS, max_size=15))}"


E164_SHAPED = st.one_of(near_valid_e164(), code_and_digits(), st.from_regex(r"\+[0-9]{0,20}", fullmatch=True))
PHONE_ISH = st.text(alphabet=DIGITS + "+ -.()/\t\u00a0x#*;,ext=", max_size=30)
# Any text a JSON body can carry: msgspec rejects lone surrogates, so none reach the resolver.
ANY_TEXT = st.one_of(st.text(max_size=40), PHONE_ISH, E164_SHAPED)


@st.composite
def with_separators(draw: st.DrawFn, number: str) -> str:
    """``number`` (``+`` and digits) with separators between some digits, as people write it."""
    digits = number[1:]
    out = ["+"]
    for i, digit in enumerate(digits):
        if i and draw(st.booleans()):
            out.append(draw(st.sampled_from(SEPARATORS)))
        out.append(digit)
    return "".join(out)


# --------------------------------------------------------------------------- helpers


def _reference(raw: str) -> tuple[bool, str | None, str | None]:
    """libphonenumber's verdict on international input: (valid, region, E.164); the contract of test_resolver."""
    try:
        number = phonenumbers.parse(raw)
    except phonenumbers.NumberParseException:
        return False, None, None
    if not phonenumbers.is_valid_number(number):
        return False, None, None
    return (
        True,
        phonenumbers.region_code_for_number(number),
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
    )


def _verdict(resolution: Resolution) -> tuple[bool, str | None, str | None]:
    if not resolution.valid:
        return False, None, None
    assert resolution.country is not None
    return True, resolution.country.region, resolution.e164


def _assert_well_formed(raw: str, resolution: Resolution) -> None:
    """What the API builds its result item from must hold for every input."""
    assert resolution.input == raw
    if resolution.valid:
        assert resolution.reason is None and resolution.country is not None and resolution.original_network is not None
        assert resolution.e164 is not None and resolution.e164[0] == "+" and resolution.e164[1:].isdigit()
        assert resolution.current_network is not None
    else:
        assert resolution.reason is not None and resolution.reason.description
        assert resolution.original_network is None and resolution.current_network is None and not resolution.ported


# --------------------------------------------------------------------------- properties


@FUZZ
@given(numbers=st.lists(ANY_TEXT, max_size=12))
def test_any_batch_resolves_one_well_formed_answer_per_input(resolver: Resolver, numbers: list[str]) -> None:
    resolutions = resolver.resolve(numbers)
    assert len(resolutions) == len(numbers)
    for raw, resolution in zip(numbers, resolutions, strict=True):
        _assert_well_formed(raw, resolution)


@FUZZ
@given(numbers=st.lists(ANY_TEXT, min_size=1, max_size=8))
def test_a_batch_answers_as_its_numbers_alone(resolver: Resolver, numbers: list[str]) -> None:
    """The plan works on whole columns; no row may depend on its neighbours."""
    assert resolver.resolve(numbers) == [resolver.resolve([raw])[0] for raw in numbers]


@FUZZ
@given(numbers=st.lists(ANY_TEXT, max_size=12), region=st.one_of(st.none(), st.sampled_from([*REGIONS, "001", "ZZ"])))
def test_resolve_columns_never_raises_with_or_without_a_region(
    resolver: Resolver, numbers: list[str], region: str | None
) -> None:
    """The bulk path (``lookup --input --region``) reads national formats too; any hint, any text."""
    columns = resolver.resolve_columns(numbers, region)
    assert len(columns) == len(numbers)
    for i, raw in enumerate(numbers):
        _assert_well_formed(raw, columns.resolution(i))
    if region is None:
        assert [columns.resolution(i) for i in range(len(numbers))] == resolver.resolve(numbers)


@FUZZ
@given(raw=E164_SHAPED)
def test_e164_input_agrees_with_phonenumbers(resolver: Resolver, raw: str) -> None:
    """Validity, region and the E.164 spelling are libphonenumber's, whichever path the plan took."""
    [resolution] = resolver.resolve([raw])
    assert _verdict(resolution) == _reference(raw), raw


@FUZZ
@given(raw=E164_SHAPED.flatmap(with_separators))
def test_spelled_input_agrees_with_phonenumbers(resolver: Resolver, raw: str) -> None:
    """``+372 5100-0001`` is the same number as ``+37251000001``, for us and for libphonenumber."""
    [resolution] = resolver.resolve([raw])
    assert _verdict(resolution) == _reference(raw), raw


@FUZZ
@given(digits=st.one_of(near_valid_e164(), code_and_digits()).map(lambda n: n[1:]))
def test_plus_double_zero_and_bare_digits_are_one_number(resolver: Resolver, digits: str) -> None:
    """The README's promise: ``+372…``, ``00372…`` and ``372…`` are the same number."""
    plus, double_zero, bare = resolver.resolve([f"+{digits}", f"00{digits}", digits])
    assert _verdict(plus) == _verdict(double_zero) == _verdict(bare)
    assert plus.reason == double_zero.reason == bare.reason
    assert plus.original_network == double_zero.original_network == bare.original_network


def test_the_e164_strategy_reaches_valid_and_invalid_numbers() -> None:
    """The agreement properties mean something only if both verdicts occur among their inputs."""
    assert _reference(find(E164_SHAPED, lambda raw: _reference(raw)[0], settings=FUZZ))[0]
    assert not _reference(find(E164_SHAPED, lambda raw: not _reference(raw)[0], settings=FUZZ))[0]
