"""One number's result object, as every output spells it: the API's answers, the CLI, bulk files.

The wire contract fixes its fields (Messente's ``NumberResult`` plus our
``checkedAt`` and ``source``), so the HTTP API, ``numlookup lookup`` and bulk
output build it here, from the offline resolution and, where a live source
answered, its ``LiveResult``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec

from numlookup.numbering.models import Network, Resolution
from numlookup.settings import OFFLINE
from numlookup.status import StatusStyle, status_word

if TYPE_CHECKING:  # the live layer (httpx, metrics) is not loaded for an offline answer: the CLI's
    from numlookup.live.service import LiveResult


# ``gc=False``: the result objects hold only strings, booleans, None and each other, so they can
# be in no reference cycle. msgspec would find them untracked anyway, field by field, at every
# construction; declared so, that check is skipped (a 10-number answer's objects built in 1.2 µs
# instead of 1.4, a microbenchmark run back to back).
class MobileNetwork(msgspec.Struct, gc=False):
    mccmnc: str | None
    networkName: str | None
    countryName: str
    countryPrefix: str
    countryCode: str


class NumberResult(msgspec.Struct, gc=False):
    number: str
    status: str
    # True/False only where something knows: imported porting data covering the
    # number's country, or a live source that told the current network; else null.
    ported: bool | None
    roaming: bool | None
    currentNetwork: MobileNetwork | None
    originalNetwork: MobileNetwork | None
    portedNetwork: MobileNetwork | None
    roamingNetwork: MobileNetwork | None
    # Extensions the official clients keep as additional properties: when the
    # answer was checked (ISO 8601, UTC) and where it came from (offline, cache,
    # osmo-hlr, upstream:<name>).
    checkedAt: str
    source: str
    error: str | msgspec.UnsetType = msgspec.UNSET


def mobile_network(network: Network | None) -> MobileNetwork | None:
    if network is None:
        return None
    country = network.country
    # Positional, in the fields' order: a Struct's keywords cost twice the construction (every request, per network).
    return MobileNetwork(network.mccmnc, network.name, country.name, country.calling_code, country.alpha3)


def offline_results(
    resolutions: Sequence[Resolution], style: StatusStyle, checked_at: str
) -> tuple[list[NumberResult], int]:
    """``[number_result(r, style, checked_at) for r in resolutions]``, and how many of them are invalid.

    Why: every offline answer is this list, ten items a request, and the
    function call per item, with its calls per network and its property reads
    (``valid``, ``ported``), was most of the bytecode that built it. One loop
    does it here, reading the fields directly; tests/test_results.py
    holds every item to :func:`number_result`'s.
    """
    known = status_word(True, None, style)
    made: list[NumberResult] = []
    invalid = 0
    for r in resolutions:
        reason = r.reason
        if reason is not None:
            invalid += 1
            made.append(number_result(r, style, checked_at))
            continue
        original = mobile_network(r.original_network)
        ported = r.ported_network
        ported_object = None if ported is None else mobile_network(ported)
        made.append(
            NumberResult(
                r.e164 or r.input,
                known,
                True if ported is not None else (False if r.porting_known else None),  # Resolution.ported
                None,
                original if ported_object is None else ported_object,  # the current network, shared
                original,
                ported_object,
                None,
                checked_at,
                OFFLINE,
            )
        )
    return made, invalid


def iso_time(moment: datetime) -> str:
    """``2026-12-06T10:15:30.123Z``: UTC, milliseconds, as JavaScript and the clients' date parsers expect."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def number_result(
    resolution: Resolution, style: StatusStyle, checked_at: str | None = None, live: LiveResult | None = None
) -> NumberResult:
    """One result item; invalid numbers carry the reason in ``error``, failed live queries theirs.

    ``checked_at`` is the time of the offline answer (the request's); a live or
    cached answer brings its own. The CLI and bulk output leave it to the call's time.
    """
    number = resolution.e164 or resolution.input
    if checked_at is None:
        checked_at = iso_time(datetime.now(UTC))
    if not resolution.valid:
        assert resolution.reason is not None
        return NumberResult(
            number=number,
            status=status_word(False, None, style),
            ported=None,
            roaming=None,
            currentNetwork=None,
            originalNetwork=None,
            portedNetwork=None,
            roamingNetwork=None,
            checkedAt=checked_at,
            source=OFFLINE,
            error=resolution.reason.description,
        )
    original = resolution.original_network
    ported = resolution.ported_network
    if live is None:
        # The current network is the ported one or the original: its object is shared, not built twice.
        # Positional, in the fields' order (number, status, ported, roaming, current, original, ported,
        # roaming network, checkedAt, source): the offline answer is every request's, ten times.
        original_object = mobile_network(original)
        ported_object = mobile_network(ported)
        return NumberResult(
            number,
            status_word(True, None, style),
            resolution.ported,
            None,
            ported_object if ported is not None else original_object,
            original_object,
            ported_object,
            None,
            checked_at,
            OFFLINE,
        )
    is_ported = resolution.ported  # None: no porting data covers the number
    if live.ported_known:  # a live source knows where the number is now; it is fresher than porting data
        ported = live.ported_network
        is_ported = ported is not None
    return NumberResult(
        number=number,
        # The network says the number is out of service: INVALID, whatever the numbering plan allows.
        status=status_word(not live.invalid, live.reachable, style),
        ported=is_ported,
        roaming=live.roaming,
        currentNetwork=mobile_network(ported or original),
        originalNetwork=mobile_network(original),
        portedNetwork=mobile_network(ported),
        roamingNetwork=mobile_network(live.roaming_network),
        checkedAt=iso_time(live.checked_at),
        source=live.source,
        error=live.error if live.error is not None else msgspec.UNSET,
    )
