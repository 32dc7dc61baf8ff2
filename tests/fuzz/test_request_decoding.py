"""Property-based fuzzing of the request decoder behind ``POST /v1/hlr/sync``.

Why: the body is the one input an anonymous client shapes byte by byte. The
contract allows exactly two outcomes for it: a ``NumbersToInvestigate``, or the
wire's 400 with code 102 (``ApiError``). Any other exception escaping the
decoder would be a 500, and a body accepted against the schema (or refused
though it fits) would be a contract bug. Hypothesis feeds it arbitrary bytes,
mutilated request bodies and arbitrary JSON documents, and for the JSON ones
checks the verdict against a model of the schema written out here.

Deeply nested bodies are built as bytes (``json.dumps`` itself recurses, and
would fail before the server does): past ``MAX_NESTING`` levels every body is
refused, whichever key holds the nesting, and below it the schema decides.

Bounded by example count (``max_examples``), derandomized, no per-example deadline.
"""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec
from hypothesis import example, given
from hypothesis import strategies as st

from numlookup.api.errors import ApiError, ErrorCode, error_response
from numlookup.api.lookup import _decode as decode_request
from numlookup.api.nesting import MAX_NESTING
from numlookup.api.wire import NumbersToInvestigate
from tests.fuzz import FUZZ

# JSON values as a client's serializer produces them. Strings exclude lone surrogates
# (no serializer emits them from real text), floats are finite (JSON has no NaN), and
# integers stay where every JSON parser agrees on them.
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
SECONDS = st.one_of(
    st.none(), st.integers(min_value=-5, max_value=10**6), st.floats(allow_nan=False, allow_infinity=False)
)
# Shaped like a request, wrong in one place or another often enough to matter.
REQUEST_LIKE = st.fixed_dictionaries(
    {"numbers": st.one_of(st.lists(st.text(max_size=20), max_size=12), st.lists(JSON_VALUES, max_size=4), JSON_VALUES)},
    optional={
        "max_age": st.one_of(SECONDS, JSON_VALUES),
        "deadline": st.one_of(SECONDS, JSON_VALUES),
        "extra": JSON_VALUES,
        "Numbers": JSON_VALUES,
    },
)
DOCUMENTS = st.one_of(REQUEST_LIKE, JSON_VALUES)


@st.composite
def mutilated(draw: st.DrawFn) -> bytes:
    """A real request body with bytes replaced, inserted or cut: the parser's corners, not just its front door."""
    body = bytearray(json.dumps(draw(REQUEST_LIKE)).encode())
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        at = draw(st.integers(min_value=0, max_value=len(body)))
        edit = draw(st.sampled_from(["replace", "insert", "cut"]))
        if edit == "cut":
            del body[at : at + draw(st.integers(min_value=1, max_value=8))]
        elif edit == "insert" or at == len(body):
            body[at:at] = draw(st.binary(min_size=1, max_size=4))
        else:
            body[at] = draw(st.integers(min_value=0, max_value=255))
    return bytes(body)


BODIES = st.one_of(st.binary(max_size=200), mutilated(), DOCUMENTS.map(lambda doc: json.dumps(doc).encode()))


def _is_seconds(value: Any) -> bool:
    """What ``max_age`` and ``deadline`` accept: null or a non-negative JSON number (booleans are not numbers)."""
    if value is None:
        return True
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def fits_the_schema(document: Any) -> bool:
    """The model: an object whose ``numbers`` is a list of strings, with optional seconds; other keys ignored."""
    if not isinstance(document, dict):
        return False
    numbers = document.get("numbers")
    if not isinstance(numbers, list) or not all(isinstance(n, str) for n in numbers):
        return False
    return _is_seconds(document.get("max_age")) and _is_seconds(document.get("deadline"))


def decode_or_refuse(body: bytes) -> NumbersToInvestigate | ApiError:
    """The decoder's verdict; anything but ``ApiError`` propagates and fails the property."""
    try:
        return decode_request(body)
    except ApiError as refusal:
        return refusal


def assert_well_typed(request: NumbersToInvestigate) -> None:
    assert isinstance(request.numbers, list) and all(isinstance(n, str) for n in request.numbers)
    for seconds in (request.max_age, request.deadline):
        assert seconds is None or (isinstance(seconds, float) and seconds >= 0)


def assert_is_the_wire_400(refusal: ApiError) -> None:
    """Code 102, HTTP 400, and a body that renders: the refusal reaches the client as the contract says."""
    assert refusal.http_status == 400 and refusal.code == ErrorCode.INVALID_PARAMETERS
    assert isinstance(refusal.description, str) and refusal.description
    response = error_response(refusal)
    assert response.status_code == 400
    body = msgspec.json.decode(response.body)
    assert body["error"] == {"code": 102, "description": refusal.description}
    assert body["errors"] == [{"error": body["error"]}]


@FUZZ
@given(body=BODIES)
def test_any_body_decodes_or_is_refused_with_102(body: bytes) -> None:
    verdict = decode_or_refuse(body)
    if isinstance(verdict, ApiError):
        assert_is_the_wire_400(verdict)
    else:
        assert_well_typed(verdict)


@FUZZ
@given(document=DOCUMENTS)
def test_json_documents_are_accepted_exactly_when_they_fit_the_schema(document: Any) -> None:
    verdict = decode_or_refuse(json.dumps(document).encode())
    if not fits_the_schema(document):
        assert isinstance(verdict, ApiError), document
        assert_is_the_wire_400(verdict)
        return
    assert isinstance(verdict, NumbersToInvestigate), (document, verdict)
    assert verdict.numbers == document["numbers"]
    for name in ("max_age", "deadline"):
        given_value = document.get(name)
        assert getattr(verdict, name) == (None if given_value is None else float(given_value))


@FUZZ
@given(document=REQUEST_LIKE, spacing=st.sampled_from([None, 0, 2]))
def test_whitespace_and_layout_do_not_change_the_verdict(document: dict[str, Any], spacing: int | None) -> None:
    """Compact or pretty-printed, a client's body means the same; only its content decides."""
    compact = decode_or_refuse(json.dumps(document, separators=(",", ":")).encode())
    laid_out = decode_or_refuse(b"\n " + json.dumps(document, indent=spacing, ensure_ascii=False).encode() + b"\r\n")
    if isinstance(compact, ApiError):
        assert isinstance(laid_out, ApiError)
    else:
        assert laid_out == compact


@FUZZ
@given(body=st.text(alphabet=" \t\r\n\x00\x0b\x0c\x1f", max_size=8).map(str.encode))
def test_empty_and_blank_bodies_are_refused(body: bytes) -> None:
    """No body at all, or only whitespace and control bytes: 102, never an accepted empty request."""
    verdict = decode_or_refuse(body)
    assert isinstance(verdict, ApiError)
    assert_is_the_wire_400(verdict)


# Where the nesting goes: the schema's own keys, keys it ignores (names that look alike included),
# or None: the document itself is the nesting.
NESTING_KEYS = st.sampled_from(["numbers", "max_age", "deadline", "x", "Numbers", "[{", None])
# Innermost values; strings full of brackets and escapes must not count as nesting.
LEAVES = st.sampled_from([b"", b"1", b"null", b'"+37251000001"', b'"]]}}"', b'"[[{{"', b'"\\\\"', b'"\\"[{"'])
LEVELS = st.one_of(
    st.integers(min_value=1, max_value=3000), st.integers(min_value=MAX_NESTING - 3, max_value=MAX_NESTING + 2)
)


def nested(levels: int, pattern: list[bool], leaf: bytes, key: str) -> bytes:
    """``levels`` arrays (True) and objects (False, each holding ``key``) in ``pattern``'s order, around ``leaf``."""
    name = json.dumps(key).encode()
    kinds = [pattern[level % len(pattern)] for level in range(levels)]
    opens = [b"[" if array else b"{" + name + b": " for array in kinds]
    if not leaf and not kinds[-1]:
        opens[-1] = b"{"  # an innermost object with nothing to hold is empty
    closes = [b"]" if array else b"}" for array in reversed(kinds)]
    return b"".join(opens) + leaf + b"".join(closes)


@FUZZ
@given(
    key=NESTING_KEYS,
    levels=LEVELS,
    pattern=st.lists(st.booleans(), min_size=1, max_size=4),
    leaf=LEAVES,
)
@example(key="x", levels=1000, pattern=[True], leaf=b"")  # the report: a 500 with a RecursionError
@example(key="x", levels=1000, pattern=[False], leaf=b"1")
@example(key="numbers", levels=100_000, pattern=[True], leaf=b"")
@example(key=None, levels=MAX_NESTING + 1, pattern=[False, True], leaf=b'"+37251000001"')
def test_deep_nesting_is_refused_with_102_wherever_it_is(
    key: str | None, levels: int, pattern: list[bool], leaf: bytes
) -> None:
    """Deeper than ``MAX_NESTING``: 102, saying so. Not deeper: the schema's verdict, as for any document."""
    if key is None:
        body, depth = nested(levels, pattern, leaf, "numbers"), levels
    elif key == "numbers":
        body, depth = b'{"numbers": ' + nested(levels, pattern, leaf, key) + b"}", 1 + levels
    else:
        name = json.dumps(key).encode()
        body, depth = (
            b'{"numbers": ["+37251000001"], ' + name + b": " + nested(levels, pattern, leaf, key) + b"}",
            1 + levels,
        )
    verdict = decode_or_refuse(body)
    if depth > MAX_NESTING:
        assert isinstance(verdict, ApiError), body[:200]
        assert_is_the_wire_400(verdict)
        assert f"more than {MAX_NESTING} levels" in verdict.description
        return
    document = json.loads(body)  # shallow enough for Python's own parser: the model decides
    if fits_the_schema(document):
        assert isinstance(verdict, NumbersToInvestigate), (body, verdict)
        assert verdict.numbers == document["numbers"]
    else:
        assert isinstance(verdict, ApiError), body
        assert_is_the_wire_400(verdict)
