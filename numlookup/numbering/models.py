"""The numbering layer's values: what a number resolves to. No I/O, no HTTP."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class InvalidReason(StrEnum):
    """Why a number is not valid, in libphonenumber's terms."""

    NOT_A_NUMBER = "not_a_number"
    INVALID_COUNTRY_CODE = "invalid_country_code"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    INVALID_LENGTH = "invalid_length"
    INVALID_FOR_REGION = "invalid_for_region"

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    InvalidReason.NOT_A_NUMBER: "Not a phone number",
    InvalidReason.INVALID_COUNTRY_CODE: "Invalid country calling code",
    InvalidReason.TOO_SHORT: "Number too short",
    InvalidReason.TOO_LONG: "Number too long",
    InvalidReason.INVALID_LENGTH: "Invalid number length for its country",
    InvalidReason.INVALID_FOR_REGION: "Not a number in use in its country's numbering plan",
}


@dataclass(frozen=True, slots=True)
class Country:
    region: str  # libphonenumber's region code: ISO 3166-1 alpha-2, or "001" for non-geographic
    alpha3: str
    name: str
    calling_code: str  # digits only


@dataclass(frozen=True, slots=True)
class Network:
    """A network as the wire shows it; ``mccmnc``/``name`` are None where no data knows them."""

    mccmnc: str | None
    name: str | None
    country: Country


@dataclass(frozen=True, slots=True)
class Resolution:
    """Everything offline data says about one input string."""

    input: str
    e164: str | None = None
    reason: InvalidReason | None = None
    number_type: str | None = None
    country: Country | None = None
    original_network: Network | None = None
    ported_network: Network | None = None
    # Whether imported porting data covers the number's country, so that not
    # finding the number in it means "not ported" rather than "nobody knows".
    porting_known: bool = False

    @property
    def valid(self) -> bool:
        return self.reason is None

    @property
    def ported(self) -> bool | None:
        """True or False where porting data covers the number; None (unknown) where nothing does."""
        if self.ported_network is not None:
            return True
        return False if self.porting_known else None

    @property
    def current_network(self) -> Network | None:
        return self.ported_network or self.original_network
