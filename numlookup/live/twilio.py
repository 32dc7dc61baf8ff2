"""The ``twilio`` kind: Twilio Lookup v2, ``GET /v2/PhoneNumbers/{e164}?Fields=line_type_intelligence,line_status``.

One number a request (HTTP Basic ``account_sid:auth_token``), concurrently up
to the source's concurrency. Twilio answers a ``LookupResponse`` (the spec:
twilio/twilio-oai ``spec/json/twilio_lookups_v2.json``) with one object per
package asked. What each field means to us:

- ``line_status.status`` (the docs: Active, Reachable, Unreachable, Inactive,
  Unknown; the spec's examples spell them lowercase, so case is ignored):
  ``reachable`` — "the target handset is connected to the mobile network":
  reachable. ``unreachable`` — "valid and active ... but the target handset is
  switched off or out of network reach": not reachable. ``inactive`` — "isn't
  assigned to any subscriber on the mobile network or is invalid": the network
  says the number is not in service, ``invalid``. ``active`` — "valid and
  active (but not necessarily reachable)" — is no proof of reachability, and
  ``unknown``, another word or no package say nothing about it: unknown, with
  Twilio's word kept in ``error``.
- ``line_status.error_code`` set: Twilio could not ask; unknown, the reason in
  our words with Twilio's code (60601: a Canadian number without NPAC access).
- ``valid: false`` (with ``validation_errors``) is Twilio's numbering-plan
  check, not the network's word: numlookup's own numbering data already found
  the number valid before routing it here, so it is NOT made ``invalid``; when
  the line status tells nothing else, reachability is unknown and ``error``
  says why (the route's next source is asked).
- ``line_type_intelligence.mobile_country_code`` + ``mobile_network_code``:
  the network serving the number now (port-corrected carrier data), as
  ``ported_mccmnc`` with ``ported_known``; the service compares it with the
  range holder (the same network: not ported). No codes (the docs: null for
  non-carrier types such as tollFree; no MNC for landlines), codes that are not
  an MCC and MNC, or the package's ``error_code`` set: porting unknown.
- Roaming: Twilio tells none; left unknown.

Every failure of the request as a whole is a ``SourceError`` in our words.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from urllib.parse import quote

import msgspec

from numlookup.live.http import HttpClients
from numlookup.live.source import LiveAnswer, SourceError
from numlookup.source_settings import TwilioSettings

PATH = "/v2/PhoneNumbers/"
FIELDS = "line_type_intelligence,line_status"
REACHABLE = "reachable"
UNREACHABLE = "unreachable"
INACTIVE = "inactive"
# Twilio's codes we can say in our own words; any other is named by its number.
KNOWN_ERRORS = {"60601": "our Twilio account lacks the NPAC approval Canadian numbers need"}
_MCC = re.compile(r"[0-9]{3}")
_MNC = re.compile(r"[0-9]{2,3}")
_WORD = re.compile(r"[^0-9A-Za-z_ .:/()-]+")


class _LineStatus(msgspec.Struct):
    status: str | None = None
    error_code: int | str | None = None


class _LineType(msgspec.Struct):
    mobile_country_code: str | None = None
    mobile_network_code: str | None = None
    carrier_name: str | None = None
    type: str | None = None
    error_code: int | str | None = None


class _Lookup(msgspec.Struct):
    phone_number: str | None = None
    valid: bool | None = None
    validation_errors: list[str] | None = None
    line_status: _LineStatus | None = None
    line_type_intelligence: _LineType | None = None


_decoder = msgspec.json.Decoder(_Lookup)


def _word(text: str | None) -> str | None:
    """A provider's word fit for a client's ``error``: printable, short; None when empty."""
    if text is None:
        return None
    cleaned = _WORD.sub("", text).strip()[:64]
    return cleaned or None


def _code(value: int | str | None) -> str | None:
    """A package's ``error_code`` fit to show (the spec says integer); None when there is none."""
    if value is None:
        return None
    return _word(str(value))


class TwilioSource:
    """``name`` is ``upstream:<name>``; one number per request (``max_batch`` 1)."""

    max_batch = 1

    def __init__(
        self,
        name: str,
        url: str,
        account_sid: str,
        auth_token: str,
        *,
        timeout: float = 3.0,
        max_connections: int = 64,
    ) -> None:
        self.name = f"upstream:{name}"
        self.timeout = timeout
        self._base = url.rstrip("/") + PATH
        self._http = HttpClients(
            self.name, timeout=timeout, max_connections=max_connections, auth=(account_sid, auth_token)
        )

    @classmethod
    def from_settings(cls, name: str, settings: TwilioSettings, max_connections: int) -> TwilioSource:
        return cls(
            name,
            settings.url,
            settings.account_sid,
            settings.auth_token,
            timeout=settings.timeout,
            max_connections=max_connections,
        )

    async def query(self, numbers: Sequence[str], max_age: float | None = None) -> dict[str, LiveAnswer]:
        """One request per number, concurrently; any failed request fails the call.

        ``max_age`` is not sent: Twilio always asks the network.
        """
        answers = await asyncio.gather(*(self._ask(number) for number in numbers))
        return {answer.number: answer for answer in answers if answer is not None}

    async def _ask(self, number: str) -> LiveAnswer | None:
        e164 = "+" + number.lstrip("+")
        # The "+" goes as it is, as Twilio's SDKs send it (a path may hold it: RFC 3986 sub-delims).
        response = await self._http.send("GET", self._base + quote(e164, safe="+"), params={"Fields": FIELDS})
        if response.status_code != 200:
            raise SourceError(f"{self.name} refused the request (HTTP {response.status_code})")
        try:
            item = _decoder.decode(response.content)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise SourceError(f"{self.name} sent an answer that is not a Lookup result") from None
        if item.phone_number is not None and item.phone_number.strip() != e164:
            return None  # an answer about another number: none for this one
        return self.answer(number, item, datetime.now(UTC))

    def answer(self, number: str, item: _Lookup, now: datetime) -> LiveAnswer:
        """One Lookup result as our answer: reachability from the line status, the network from the line type."""
        status = item.line_status
        word = _word(status.status) if status is not None else None
        folded = (word or "").casefold()
        failed = _code(status.error_code) if status is not None else None
        reachable: bool | None = None
        invalid = False
        reason: str | None = None
        if failed is not None:
            reason = self._failed("line status", failed)
        elif folded == REACHABLE:
            reachable = True
        elif folded == UNREACHABLE:
            reachable = False
        elif folded == INACTIVE:
            reachable, invalid = False, True
            reason = f"{self.name} says the number is not in service (line status {word})"
        elif item.valid is False:
            reasons = [w for w in map(_word, item.validation_errors or ()) if w]
            reason = f"{self.name} says the number is not valid ({', '.join(reasons) or 'no reason given'})"
        elif word:
            reason = f"{self.name} answered line status {word}"
        else:
            reason = f"{self.name} gave no line status"
        ported_mccmnc = _current_network(item.line_type_intelligence)
        return LiveAnswer(
            number=number,
            reachable=reachable,
            invalid=invalid,
            ported_known=ported_mccmnc is not None,
            ported_mccmnc=ported_mccmnc,
            error=reason,
            checked_at=now,
        )

    def _failed(self, package: str, code: str) -> str:
        """A package's ``error_code`` in our words, with Twilio's code for the operator."""
        known = KNOWN_ERRORS.get(code)
        said = f": {known}" if known else ""
        return f"{self.name} could not tell the {package}{said} (Twilio error {code})"

    async def close(self) -> None:
        await self._http.close()


def _current_network(line_type: _LineType | None) -> str | None:
    """The MCC/MNC of the network serving the number now, when the line type package gives both codes."""
    if line_type is None or _code(line_type.error_code) is not None:
        return None
    mcc = (line_type.mobile_country_code or "").strip()
    mnc = (line_type.mobile_network_code or "").strip()
    if _MCC.fullmatch(mcc) and _MNC.fullmatch(mnc):
        return mcc + mnc
    return None
