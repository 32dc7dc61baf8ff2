"""What phonenumbers itself says about one input: the slow path, and the definition of correct.

The compiled plan answers most inputs from its arrays; whatever they cannot
decide goes through ``reference``, and the test suite and ``bench/numbering.py``
compare the plan with it on every number of a seeded corpus.
"""

from __future__ import annotations

import traceback
from typing import NamedTuple

import phonenumbers
from phonenumbers import NumberParseException, ValidationResult

from numlookup.numbering.layout import UNKNOWN
from numlookup.numbering.models import InvalidReason

_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: InvalidReason.INVALID_COUNTRY_CODE,
    NumberParseException.NOT_A_NUMBER: InvalidReason.NOT_A_NUMBER,
    NumberParseException.TOO_SHORT_AFTER_IDD: InvalidReason.TOO_SHORT,
    NumberParseException.TOO_SHORT_NSN: InvalidReason.TOO_SHORT,
    NumberParseException.TOO_LONG: InvalidReason.TOO_LONG,
}
_POSSIBLE_REASONS = {
    ValidationResult.INVALID_COUNTRY_CODE: InvalidReason.INVALID_COUNTRY_CODE,
    ValidationResult.TOO_SHORT: InvalidReason.TOO_SHORT,
    ValidationResult.TOO_LONG: InvalidReason.TOO_LONG,
    ValidationResult.INVALID_LENGTH: InvalidReason.INVALID_LENGTH,
}


class Reference(NamedTuple):
    """What phonenumbers says about one input, in the plan's terms."""

    valid: bool
    reason: InvalidReason | None
    number_type: int  # PhoneNumberType; UNKNOWN when not valid
    region: str | None  # only for valid numbers
    carrier: str  # carrier.name_for_number(…, "en"); "" when none or not valid
    e164: str | None  # None when the input does not parse


def reference(raw: str, region: str | None = None, *, with_carrier: bool = True) -> Reference:
    """The slow path, and the definition of correct: the checks ``Resolver`` makes, in its order.

    Parse (its errors are reasons), then ``is_possible_number_with_reason``, then
    the region ``region_code_for_number`` picks and ``is_valid_number_for_region``;
    type and carrier only for valid numbers. Without ``with_carrier`` the carrier
    is left ``""``: the compiled plan names it from its own table, and the carrier
    data (``phonenumbers.carrier``, tens of milliseconds to import) is not loaded.
    """
    try:
        number = phonenumbers.parse(raw, region)
    except NumberParseException as exc:
        # phonenumbers keeps an exception it caught in a frame of this traceback: a cycle that, through the
        # frames' callers, held a bulk block's lines until the next collection. Its frames' locals let go now.
        traceback.clear_frames(exc.__traceback__)
        return Reference(False, _PARSE_REASONS.get(exc.error_type, InvalidReason.NOT_A_NUMBER), UNKNOWN, None, "", None)
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    possible = phonenumbers.is_possible_number_with_reason(number)
    if possible in _POSSIBLE_REASONS:
        return Reference(False, _POSSIBLE_REASONS[possible], UNKNOWN, None, "", e164)
    where = phonenumbers.region_code_for_number(number)
    if where is None or not phonenumbers.is_valid_number_for_region(number, where):
        return Reference(False, InvalidReason.INVALID_FOR_REGION, UNKNOWN, None, "", e164)
    name = ""
    if with_carrier:
        from phonenumbers import carrier

        name = carrier.name_for_number(number, "en")
    return Reference(True, None, int(phonenumbers.number_type(number)), where, name, e164)
