"""The request and response bodies of ``POST /v1/hlr/sync`` as msgspec Structs.

The handler decodes and encodes with these, and ``/openapi.json`` is generated
from them, so the documented schema cannot drift from what is served.
"""

from __future__ import annotations

import msgspec

from numlookup.numbering.models import Network, Resolution
from numlookup.api.status import status_word
from numlookup.settings import StatusStyle


class NumbersToInvestigate(msgspec.Struct):
    """Unknown keys are ignored, as the contract asks."""

    numbers: list[str]


class MobileNetwork(msgspec.Struct):
    mccmnc: str | None
    networkName: str | None
    countryName: str
    countryPrefix: str
    countryCode: str


class NumberResult(msgspec.Struct):
    number: str
    status: str
    ported: bool | None
    roaming: bool | None
    currentNetwork: MobileNetwork | None
    originalNetwork: MobileNetwork | None
    portedNetwork: MobileNetwork | None
    roamingNetwork: MobileNetwork | None
    error: str | msgspec.UnsetType = msgspec.UNSET


class LookupSuccess(msgspec.Struct):
    request_id: str
    result: list[NumberResult]


def mobile_network(network: Network | None) -> MobileNetwork | None:
    if network is None:
        return None
    country = network.country
    return MobileNetwork(
        mccmnc=network.mccmnc,
        networkName=network.name,
        countryName=country.name,
        countryPrefix=country.calling_code,
        countryCode=country.alpha3,
    )


def number_result(resolution: Resolution, style: StatusStyle) -> NumberResult:
    """One result item; invalid numbers carry the reason in ``error``."""
    if not resolution.valid:
        assert resolution.reason is not None
        return NumberResult(
            number=resolution.e164 or resolution.input,
            status=status_word(False, None, style),
            ported=None,
            roaming=None,
            currentNetwork=None,
            originalNetwork=None,
            portedNetwork=None,
            roamingNetwork=None,
            error=resolution.reason.description,
        )
    return NumberResult(
        number=resolution.e164 or resolution.input,
        status=status_word(True, None, style),
        ported=resolution.ported,
        roaming=None,
        currentNetwork=mobile_network(resolution.current_network),
        originalNetwork=mobile_network(resolution.original_network),
        portedNetwork=mobile_network(resolution.ported_network),
        roamingNetwork=None,
    )
