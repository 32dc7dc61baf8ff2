"""Batch resolution of number strings, shared by the HTTP server and the CLI.

The resolver takes a list and returns a list: a single lookup is a batch of one,
and a string repeated in a batch is resolved once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType, ValidationResult, carrier

from numlookup.numbering.countries import country_for
from numlookup.numbering.models import Country, InvalidReason, Network, Resolution
from numlookup.numbering.networks import NetworkTable
from numlookup.numbering.operator_data import OperatorData
from numlookup.numbering.tables import NO_NETWORK, DataNetwork, number_keys, padded_keys

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

    def __init__(self, networks: NetworkTable | None = None, operator: OperatorData | None = None) -> None:
        phonenumbers.enable_pattern_cache()
        self.networks = networks or NetworkTable.shipped()
        self.operator = operator or OperatorData()

    def use(self, operator: OperatorData) -> None:
        """Serve from new operator data; batches already running finish on the old."""
        self.operator = operator

    def resolve(self, numbers: Sequence[str]) -> list[Resolution]:
        operator = self.operator  # one snapshot for the whole batch
        unique = {raw: self._resolve_one(raw) for raw in dict.fromkeys(numbers)}
        if operator.ranges is not None or operator.ported is not None:
            self._apply_operator_data(operator, unique)
        return [unique[raw] for raw in numbers]

    def _data_network(self, network: DataNetwork, country: Country) -> Network:
        record = self.networks.records.get(network.mccmnc)
        return Network(mccmnc=network.mccmnc, name=network.name or (record.name if record else None), country=country)

    def _apply_operator_data(self, operator: OperatorData, unique: dict[str, Resolution]) -> None:
        """Imported ranges override shipped ones; a ported number overrides its range."""
        valid = [raw for raw, r in unique.items() if r.valid]
        if not valid:
            return
        e164 = [unique[raw].e164 or "" for raw in valid]
        no_hits = [NO_NETWORK] * len(valid)
        range_hits = operator.ranges.lookup(padded_keys(e164)).tolist() if operator.ranges is not None else no_hits
        ported_hits = operator.ported.lookup(number_keys(e164)).tolist() if operator.ported is not None else no_hits
        for raw, range_hit, ported_hit in zip(valid, range_hits, ported_hits, strict=True):
            if range_hit == NO_NETWORK and ported_hit == NO_NETWORK:
                continue
            resolution = unique[raw]
            assert resolution.country is not None
            original = resolution.original_network
            if range_hit != NO_NETWORK:
                assert operator.ranges is not None
                original = self._data_network(operator.ranges.networks[range_hit], resolution.country)
            ported = None
            if ported_hit != NO_NETWORK:
                assert operator.ported is not None
                candidate = self._data_network(operator.ported.networks[ported_hit], resolution.country)
                # A number "ported" to its own range holder has come home: it is not ported.
                if original is None or candidate.mccmnc != original.mccmnc:
                    ported = candidate
            unique[raw] = replace(resolution, original_network=original, ported_network=ported)

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
