"""The ``infobip`` kind: Infobip Number Lookup (``POST {url}/number/1/query``), up to 1,000 numbers a request.

Infobip asks the home network's HLR and answers per number (the spec:
api-evangelist/infobip ``openapi/infobip-number-lookup-openapi.json``,
``NcResponseDetails``). What each field means to us:

- ``status.groupName``: ``DELIVERED`` — the HLR reached the subscriber:
  reachable. ``UNDELIVERABLE`` with the error ``EC_ABSENT_SUBSCRIBER`` (MAP
  absentSubscriber, 27) or ``EC_ABSENT_SUBSCRIBER_SM`` (absentSubscriberSM, 6):
  the subscriber is detached: not reachable. Any other group (``PENDING``,
  ``EXPIRED``, ``REJECTED``, ``ACCEPTED``, an unknown word) or another error:
  reachability unknown, with Infobip's own words kept in ``error``.
- ``error.permanent`` true: the network says the number is not in service:
  ``invalid``, whatever the status says.
- ``ported`` + ``portedNetwork``: the current network, by name and country
  calling code (Infobip gives no MCC/MNC for it); the service resolves the
  name through the registry (``networks.SourceNetworks.by_name``).
- ``roaming`` + ``roamingNetwork``: where the subscriber roams, the same way;
  ``servingMSC`` (the serving switch's global title) gives the country when
  Infobip says the subscriber roams but names no roaming network.
- ``mccMnc``, "MCC and MNC concatenated", is NOT read as the current network
  on its own: in the spec's "Ported number lookup response" it is 22801
  (Swisscom, the original network, and the IMSI's prefix) while
  ``portedNetwork`` is Sunrise, and in its roaming example it is the home
  network while the subscriber is in Tele2 Sweden. So it may name the range
  holder. It is used only where the answer's own porting fields agree with
  it: a ported number whose ``portedNetwork`` name is the registry's name for
  that MCC/MNC (which pins Sunrise to one of its three Swiss codes), or a
  ported number with no named network whose ``mccMnc`` is not the range
  holder's. That needs the registry: ``use_numbering`` gives it.
- ``originalNetwork``: not used; the numbering data knows the range holder.

Numbers go without ``+`` (``41793026727``) and answers are matched back by
``to``. Every failure of the request as a whole is a ``SourceError`` in our words.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec
import phonenumbers

from numlookup.live.http import HttpClients
from numlookup.live.source import LiveAnswer, SourceError
from numlookup.numbering import Resolver
from numlookup.source_settings import InfobipSettings

PATH = "/number/1/query"
MAX_BATCH = 1000  # NcQueryRequest.to maxItems
REACHED = "DELIVERED"
UNDELIVERABLE = "UNDELIVERABLE"
ABSENT = frozenset({"EC_ABSENT_SUBSCRIBER", "EC_ABSENT_SUBSCRIBER_SM"})
NO_ERROR = "NO_ERROR"
_NOT_NAME = re.compile(r"[^0-9a-z]+")
_WORD = re.compile(r"[^0-9A-Za-z_ .:/()-]+")


class _Network(msgspec.Struct):
    networkName: str | None = None
    networkPrefix: str | int | None = None
    countryName: str | None = None
    countryPrefix: str | int | None = None
    networkId: int | None = None


class _Status(msgspec.Struct):
    groupId: int | None = None
    groupName: str | None = None
    id: int | None = None
    name: str | None = None
    description: str | None = None
    action: str | None = None


class _Error(msgspec.Struct):
    groupId: int | None = None
    groupName: str | None = None
    id: int | None = None
    name: str | None = None
    description: str | None = None
    permanent: bool | None = None


class _Result(msgspec.Struct):
    to: str | None = None
    mccMnc: str | None = None
    imsi: str | None = None
    originalNetwork: _Network | None = None
    ported: bool | None = None
    portedNetwork: _Network | None = None
    roaming: bool | None = None
    roamingNetwork: _Network | None = None
    servingMSC: str | None = None
    status: _Status | None = None
    error: _Error | None = None


class _Response(msgspec.Struct):
    results: list[_Result]
    bulkId: str | None = None


_decoder = msgspec.json.Decoder(_Response)


def _folded(name: str) -> str:
    """A network name compared loosely, as ``networks`` compares them: ``T-Mobile`` is ``tmobile``."""
    return _NOT_NAME.sub("", name.casefold())


def _word(text: str | None) -> str | None:
    """A provider's word fit for a client's ``error``: printable, short; None when empty."""
    if text is None:
        return None
    cleaned = _WORD.sub("", text).strip()[:64]
    return cleaned or None


def _name(text: str | None) -> str | None:
    """A network name as Infobip spells it (any script), without control characters; None when empty."""
    if text is None:
        return None
    cleaned = "".join(ch for ch in text if ch.isprintable()).strip()[:100]
    return cleaned or None


def _digits(value: str | int | None) -> str | None:
    text = str(value).strip().lstrip("+") if value is not None else ""
    return text if text.isdigit() else None


class InfobipSource:
    """``name`` is ``upstream:<name>``; ``max_batch`` at most Infobip's 1,000 numbers a request."""

    def __init__(
        self,
        name: str,
        url: str,
        api_key: str,
        *,
        max_batch: int = MAX_BATCH,
        timeout: float = 3.0,
        max_connections: int = 64,
        resolver: Resolver | None = None,
    ) -> None:
        self.name = f"upstream:{name}"
        self.max_batch = min(max(max_batch, 1), MAX_BATCH)
        self.timeout = timeout
        self._url = url.rstrip("/") + PATH
        self._numbering = resolver
        self._http = HttpClients(
            self.name,
            timeout=timeout,
            max_connections=max_connections,
            headers={"Authorization": f"App {api_key}", "Content-Type": "application/json"},
        )

    @classmethod
    def from_settings(cls, name: str, settings: InfobipSettings, max_connections: int) -> InfobipSource:
        return cls(
            name,
            settings.url,
            settings.api_key,
            max_batch=settings.max_batch,
            timeout=settings.timeout,
            max_connections=max_connections,
        )

    def use_numbering(self, resolver: Resolver) -> None:
        """Check ``mccMnc`` against the registry and the range holder (see the module's docstring)."""
        self._numbering = resolver

    async def query(self, numbers: Sequence[str], max_age: float | None = None) -> dict[str, LiveAnswer]:
        """One request per ``max_batch`` numbers, concurrently; any failed request fails the call.

        ``max_age`` is not sent: Infobip always asks the HLR.
        """
        batches = [list(numbers[i : i + self.max_batch]) for i in range(0, len(numbers), self.max_batch)]
        answers: dict[str, LiveAnswer] = {}
        for part in await asyncio.gather(*(self._batch(batch) for batch in batches)):
            answers.update(part)
        return answers

    async def _batch(self, numbers: list[str]) -> dict[str, LiveAnswer]:
        asked = {number.lstrip("+"): number for number in numbers}
        body = msgspec.json.encode({"to": list(asked)})
        response = await self._http.send("POST", self._url, content=body)
        if response.status_code != 200:
            raise SourceError(f"{self.name} refused the request (HTTP {response.status_code})")
        try:
            results = _decoder.decode(response.content).results
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise SourceError(f"{self.name} sent an answer that is not a Number Lookup result") from None
        now = datetime.now(UTC)
        answers: dict[str, LiveAnswer] = {}
        for item in results:
            number = asked.get((item.to or "").strip().lstrip("+"))
            if number is not None:
                answers[number] = self.answer(number, item, now)
        return answers

    def answer(self, number: str, item: _Result, now: datetime) -> LiveAnswer:
        """One result as our answer: reachability from status and error, then porting and roaming."""
        status, error = item.status or _Status(), item.error or _Error()
        group, error_name = (status.groupName or "").strip().upper(), (error.name or "").strip().upper()
        invalid = error.permanent is True
        reachable: bool | None
        reason: str | None = None
        if invalid:
            reachable = False
            reason = f"{self.name} says the number is not in service ({_word(error.name) or 'permanent error'})"
        elif group == REACHED:
            reachable = True
        elif group == UNDELIVERABLE and error_name in ABSENT:
            reachable = False
        else:
            reachable = None
            reason = self._cannot_tell(status, error)
        ported_known, ported_mccmnc, ported_name, ported_country = self._porting(number, item)
        roaming_net = item.roamingNetwork if item.roaming else None
        return LiveAnswer(
            number=number,
            reachable=reachable,
            invalid=invalid,
            roaming=item.roaming,
            roaming_name=_name(roaming_net.networkName) if roaming_net else None,
            roaming_country=_digits(roaming_net.countryPrefix) if roaming_net else None,
            # The serving switch's global title: its country, when Infobip says it roams but names no network.
            roaming_gt=_digits(item.servingMSC) if item.roaming else None,
            ported_known=ported_known,
            ported_mccmnc=ported_mccmnc,
            ported_name=ported_name,
            ported_country=ported_country,
            error=reason,
            checked_at=now,
        )

    def _cannot_tell(self, status: _Status, error: _Error) -> str:
        """Infobip's own words for an answer that does not say whether the subscriber is reachable."""
        words = [w for w in (_word(status.groupName), _word(status.name)) if w]
        said = (
            f"{self.name} answered status {' '.join(dict.fromkeys(words))}" if words else f"{self.name} gave no status"
        )
        error_word = _word(error.name)
        if error_word and error_word.upper() != NO_ERROR:
            said += f" with error {error_word}"
        return said

    def _porting(self, number: str, item: _Result) -> tuple[bool, str | None, str | None, str | None]:
        """(the answer states the current network, its MCC/MNC, its name, its country calling code)."""
        if item.ported is None:
            return False, None, None, None
        if not item.ported:
            return True, None, None, None
        network = item.portedNetwork or _Network()
        name, country = _name(network.networkName), _digits(network.countryPrefix)
        mccmnc = _digits(item.mccMnc)
        if name is not None:
            if mccmnc is not None and self._names(mccmnc, name, country):
                return True, mccmnc, None, None
            return True, None, name, country
        if mccmnc is not None and self._not_range_holder(number, mccmnc):
            return True, mccmnc, None, None
        return False, None, None, None  # ported, but Infobip names no network we could tell the client

    def _names(self, mccmnc: str, name: str, calling_code: str | None) -> bool:
        """Does the registry call ``mccmnc`` ``name`` (in the country of ``calling_code``, when given)?"""
        if self._numbering is None:
            return False
        record = self._numbering.networks.records.get(mccmnc)
        if record is None:
            return False
        if calling_code is not None:
            regions = set(phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(int(calling_code), ()))
            if not regions.intersection(record.countries):
                return False
        return _folded(name) in {_folded(record.name), _folded(record.brand), _folded(record.operator)} - {""}

    def _not_range_holder(self, number: str, mccmnc: str) -> bool:
        """A ported number's ``mccMnc`` names its current network only if it is a network other than its range's."""
        if self._numbering is None or mccmnc not in self._numbering.networks.records:
            return False
        [resolution] = self._numbering.resolve([number])
        original = resolution.original_network
        return original is not None and original.mccmnc is not None and original.mccmnc != mccmnc

    async def close(self) -> None:
        await self._http.close()
