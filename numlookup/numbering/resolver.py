"""Batch resolution of number strings, shared by the HTTP server and the CLI.

The resolver takes a list and returns a list: a single lookup is a batch of one,
and a string repeated in a batch is resolved once.
"""

from __future__ import annotations

from collections.abc import Sequence

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType, ValidationResult, carrier

from numlookup.numbering.countries import country_for
from numlookup.numbering.models import InvalidReason, Network, Resolution
from numlookup.numbering.networks import NetworkTable

_SEPARATORS = str.maketrans("", "", " \t-.()/\u00a0")

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

_TYPE_NAMES = {
    value: name.lower() for name, value in vars(PhoneNumberType).items() if name.isupper() and isinstance(value, int)
}


def international_form(raw: str) -> str:
    """Turn the spellings clients send (``372…``, ``00372…``, ``+372 5100-0001``) into ``+372…``.

    The API has no region hint, so a number without ``+`` or ``00`` is taken to
    start with its country calling code, as Messente does.
    """
    text = raw.strip()
    compact = text.translate(_SEPARATORS)
    if compact.startswith("+"):
        return compact
    if compact.isdigit():
        return "+" + (compact[2:] if compact.startswith("00") else compact)
    return text


class Resolver:
    """Resolves numbers against libphonenumber and the shipped network table."""

    def __init__(self, networks: NetworkTable | None = None) -> None:
        phonenumbers.enable_pattern_cache()
        self.networks = networks or NetworkTable.shipped()

    def resolve(self, numbers: Sequence[str]) -> list[Resolution]:
        seen: dict[str, Resolution] = {}
        results = []
        for raw in numbers:
            resolution = seen.get(raw)
            if resolution is None:
                resolution = seen[raw] = self._resolve_one(raw)
            results.append(resolution)
        return results

    def _resolve_one(self, raw: str) -> Resolution:
        try:
            number = phonenumbers.parse(international_form(raw), None)
        except NumberParseException as exc:
            return Resolution(input=raw, reason=_PARSE_REASONS.get(exc.error_type, InvalidReason.NOT_A_NUMBER))
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        possible = phonenumbers.is_possible_number_with_reason(number)
        if possible in _POSSIBLE_REASONS:
            return Resolution(input=raw, e164=e164, reason=_POSSIBLE_REASONS[possible])
        region = phonenumbers.region_code_for_number(number)
        if region is None or not phonenumbers.is_valid_number_for_region(number, region):
            return Resolution(input=raw, e164=e164, reason=InvalidReason.INVALID_FOR_REGION)
        country = country_for(region, number.country_code)
        mccmnc, name = self.networks.network_for_carrier(region, carrier.name_for_number(number, "en"))
        return Resolution(
            input=raw,
            e164=e164,
            number_type=_TYPE_NAMES.get(phonenumbers.number_type(number), "unknown"),
            country=country,
            original_network=Network(mccmnc=mccmnc, name=name, country=country),
        )
