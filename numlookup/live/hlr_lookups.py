"""The ``hlr-lookups`` kind: HLR-Lookups.com API v2, one signed ``POST {url}/api/v2/hlr-lookup`` per number.

Authentication is the provider's digest scheme (its PHP SDK,
``HLRLookupClient::buildAuthHeaders``): ``X-Digest-Key`` is the API key,
``X-Digest-Timestamp`` Unix seconds, and ``X-Digest-Signature`` the hex
HMAC-SHA256, keyed by the API secret, of the endpoint path without ``/api/v2``
(``/hlr-lookup``), the timestamp, the method and the exact body bytes sent. The
provider refuses a timestamp far from its own clock, so, as the SDK does, we
sign with the provider's time, told by ``GET /api/v2/time``; unlike the SDK,
which asks before every request, we keep the offset from our clock and learn it
again every ``CLOCK_REFRESH_SECONDS`` and after a failed lookup (a refusal may
be a clock that drifted). ``server_clock = false`` signs with this host's clock.

What an answer means (the SDK README's documented response):

- ``connectivity_status`` CONNECTED: reachable; ABSENT: not reachable;
  INVALID_MSISDN: not in service (``invalid``); UNDETERMINED or any other word:
  reachability unknown, the word in ``error``. A ``processing_status`` other
  than COMPLETED: the lookup did not complete, and the answer tells nothing.
- ``mccmnc`` names the subscriber's network now, the one whose HLR answered:
  in the documented example it is 310260, T-Mobile US, the ``ported_network``
  of a number Verizon Wireless holds the range of. So with ``is_ported`` true it
  is the ported-to network (``ported_mccmnc``); without an MCC/MNC the ported
  network's name and country prefix are passed on (``ported_name`` /
  ``ported_country``). ``is_ported`` false: not ported, whatever ``mccmnc`` says
  (the provider's explicit word; our range data decides the network). Roaming
  does not change ``mccmnc`` (it is the subscription's network, not the
  visited one); the visited network is ``roaming_network_name`` with its
  country prefix.
- ``cost`` is what the provider charged for the lookup, in the account's
  currency, which the answer does not name: with ``currency`` set it is counted
  exactly (a decimal, never a float) in place of the configured ``cost``.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

import msgspec

from numlookup.live.http import HttpClients
from numlookup.live.networks import SourceNetworks
from numlookup.live.source import LiveAnswer, SourceError
from numlookup.source_settings import HlrLookupsSettings

API_PATH = "/api/v2"
LOOKUP_PATH = "/hlr-lookup"  # what is signed: the endpoint without /api/v2, as the SDK signs it
TIME_PATH = "/time"
CLOCK_REFRESH_SECONDS = 600.0  # a clock offset drifts slowly: learning it again every 10 minutes is plenty
CLOCK_RETRY_SECONDS = 30.0  # after GET /time failed (our own clock is used meanwhile)

_REACHABLE = {"CONNECTED": True, "ABSENT": False}
INVALID_MSISDN = "INVALID_MSISDN"
COMPLETED = "COMPLETED"
_MCCMNC = re.compile(r"[0-9]{5,6}")
_WORD = re.compile(r"[^A-Za-z0-9_ .:-]")  # what of a provider's word we show clients
_NAME_LENGTH = 120  # the live cache's network name columns


_NULL = msgspec.Raw(b"null")


class _Lookup(msgspec.Struct):
    """The fields of ``POST /hlr-lookup``'s response that we read (others are ignored)."""

    connectivity_status: str
    msisdn: str | None = None
    mccmnc: str | None = None
    mcc: str | None = None
    mnc: str | None = None
    is_ported: bool | None = None
    ported_network_name: str | None = None
    ported_country_prefix: str | None = None
    is_roaming: bool | None = None
    roaming_network_name: str | None = None
    roaming_country_prefix: str | None = None
    cost: msgspec.Raw = _NULL  # raw JSON: a string ("0.0100") or a number, read exactly as a decimal
    timestamp: str | None = None
    processing_status: str | None = None
    error_code: str | int | None = None


class _Time(msgspec.Struct):
    time: int | float


_lookup_decoder = msgspec.json.Decoder(_Lookup)
_time_decoder = msgspec.json.Decoder(_Time)


def signature(secret: bytes, path: str, timestamp: int, method: str, body: bytes) -> str:
    """``X-Digest-Signature``: hex HMAC-SHA256(secret, path + timestamp + METHOD + body), the SDK's recipe."""
    message = path.encode() + str(timestamp).encode() + method.encode() + body
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def cost_micros(raw: msgspec.Raw) -> int | None:
    """The answer's ``cost`` in millionths, exactly; None when absent or not a non-negative amount of ≤ 6 decimals."""
    text = bytes(raw).decode("utf-8", "replace").strip()
    if text.startswith('"') and text.endswith('"'):
        text = text[1:-1].strip()
    try:
        amount = Decimal(text)
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount < 0:
        return None
    value = amount * 1_000_000
    if value != value.to_integral_value():
        return None
    return int(value)


def _word(text: object) -> str:
    return _WORD.sub("", str(text))[:40]


def _mccmnc(item: _Lookup) -> str | None:
    if item.mccmnc and _MCCMNC.fullmatch(item.mccmnc):
        return item.mccmnc
    mcc, mnc = item.mcc or "", item.mnc or ""
    if len(mcc) == 3 and len(mnc) in (2, 3) and (mcc + mnc).isdigit():
        return mcc + mnc
    return None


def _calling_code(prefix: str | None) -> str | None:
    """The country calling code a prefix (``+1``, ``+1415``, ``+44``) starts with."""
    digits = "".join(c for c in prefix or "" if c.isdigit())
    country = SourceNetworks.country_of_digits(digits) if digits else None
    return country.calling_code if country is not None else None


def _name(text: str | None) -> str | None:
    name = (text or "").strip()
    return name[:_NAME_LENGTH] if name else None


def _checked_at(text: str | None, now: datetime) -> datetime:
    """The provider's ``timestamp`` of the lookup (``2020-08-07 19:16:17.676+0300``), never later than now."""
    if text:
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            return now
        if moment.tzinfo is not None:
            return min(moment, now)
    return now


class _Porting(NamedTuple):
    known: bool
    mccmnc: str | None = None
    name: str | None = None
    country: str | None = None


class _Roaming(NamedTuple):
    roaming: bool | None
    name: str | None = None
    country: str | None = None


def _porting(item: _Lookup) -> _Porting:
    """The porting fields of the answer: see the module docstring for what ``mccmnc`` and ``is_ported`` mean."""
    current = _mccmnc(item)
    if item.is_ported is False:
        return _Porting(known=True)
    if current is not None:  # is_ported true, or not stated: the network that holds the subscriber now
        return _Porting(known=True, mccmnc=current)
    name = _name(item.ported_network_name)
    if item.is_ported and name is not None:
        return _Porting(known=True, name=name, country=_calling_code(item.ported_country_prefix))
    return _Porting(known=False)  # ported, but to no network it names; or nothing said


def _roaming(item: _Lookup) -> _Roaming:
    name = _name(item.roaming_network_name) if item.is_roaming else None
    if name is None:
        return _Roaming(item.is_roaming)
    return _Roaming(True, name, _calling_code(item.roaming_country_prefix))


class _ProviderClock:
    """The provider's clock as an offset from ours, from ``GET /api/v2/time`` (``{"time": <unix seconds>}``)."""

    def __init__(self, http: HttpClients, url: str, timeout: float) -> None:
        self._http = http
        self._url = url
        self._timeout = timeout
        self._offset = 0.0
        self._next_learn = 0.0  # time.monotonic() after which the offset is learnt again
        self._lock = asyncio.Lock()

    async def now(self) -> int:
        if time.monotonic() >= self._next_learn:
            async with self._lock:  # one GET /time for every lookup waiting on it
                if time.monotonic() >= self._next_learn:
                    await self._learn()
        return int(time.time() + self._offset)

    def forget(self) -> None:
        self._next_learn = 0.0

    async def _learn(self) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                response = await self._http.send("GET", self._url)
            if response.status_code != 200:
                raise SourceError("no time")
            told = _time_decoder.decode(response.content).time
        except (SourceError, TimeoutError, msgspec.DecodeError, msgspec.ValidationError):
            # As the SDK does: our own clock (or the offset learnt before) until the next try.
            self._next_learn = time.monotonic() + CLOCK_RETRY_SECONDS
            return
        self._offset = float(told) - time.time()
        self._next_learn = time.monotonic() + CLOCK_REFRESH_SECONDS


class HlrLookupsSource:
    """``name`` is ``upstream:<name>``; one number per request (``max_batch`` 1), requests in parallel."""

    max_batch = 1

    def __init__(
        self,
        name: str,
        url: str,
        api_key: str,
        api_secret: str,
        *,
        timeout: float = 3.0,
        max_connections: int = 64,
        server_clock: bool = True,
        currency: str = "",
    ) -> None:
        self.name = f"upstream:{name}"
        self.timeout = timeout
        base = url.rstrip("/") + API_PATH
        self._lookup_url = base + LOOKUP_PATH
        self._key = api_key
        self._secret = api_secret.encode()
        self._counts_cost = bool(currency)  # an amount is only worth counting in a known currency
        self._http = HttpClients(self.name, timeout=timeout, max_connections=max_connections)
        # GET /time gets half the timeout: a lookup that waited for it still has its own.
        self._clock = _ProviderClock(self._http, base + TIME_PATH, timeout / 2) if server_clock else None

    @classmethod
    def from_settings(cls, name: str, settings: HlrLookupsSettings, max_connections: int) -> HlrLookupsSource:
        return cls(
            name,
            settings.url,
            settings.api_key,
            settings.api_secret,
            timeout=settings.timeout,
            max_connections=max_connections,
            server_clock=settings.server_clock,
            currency=settings.currency,
        )

    async def query(self, numbers: Sequence[str], max_age: float | None = None) -> dict[str, LiveAnswer]:
        """One request per number, concurrently; any failed request fails the call (``max_age``: no such option)."""
        answers = await asyncio.gather(*(self._lookup(number) for number in numbers))
        return {answer.number: answer for answer in answers}

    async def _lookup(self, number: str) -> LiveAnswer:
        msisdn = "+" + number.lstrip("+")
        body = msgspec.json.encode({"msisdn": msisdn})  # compact, as the SDK's json_encode: the bytes signed
        timestamp = await self._clock.now() if self._clock is not None else int(time.time())
        headers = {
            "Content-Type": "application/json",
            "X-Digest-Key": self._key,
            "X-Digest-Timestamp": str(timestamp),
            "X-Digest-Signature": signature(self._secret, LOOKUP_PATH, timestamp, "POST", body),
        }
        try:
            response = await self._http.send("POST", self._lookup_url, content=body, headers=headers)
            if response.status_code != 200:
                raise SourceError(f"{self.name} refused the request (HTTP {response.status_code})")
        except SourceError as exc:
            if exc.retry_after is None and self._clock is not None:
                self._clock.forget()  # a refusal may be our clock: learn the provider's again first
            raise
        try:
            item = _lookup_decoder.decode(response.content)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise SourceError(f"{self.name} sent an answer that is not an HLR lookup result") from None
        if item.msisdn is not None and "".join(c for c in item.msisdn if c.isdigit()) != msisdn[1:]:
            raise SourceError(f"{self.name} answered for another number than the one asked")
        return self.answer(number, item, datetime.now(UTC))

    def answer(self, number: str, item: _Lookup, now: datetime) -> LiveAnswer:
        """The provider's answer for ``number`` as ours (the module docstring says what each field means)."""
        cost = cost_micros(item.cost) if self._counts_cost else None
        checked_at = _checked_at(item.timestamp, now)
        processing = (item.processing_status or COMPLETED).strip().upper()
        if processing != COMPLETED:
            reason = f"{self.name} could not complete the lookup (processing_status {_word(item.processing_status)})"
            return LiveAnswer(
                number=number, reachable=None, ported_known=False, error=reason, checked_at=checked_at, cost_micros=cost
            )
        word = item.connectivity_status.strip().upper()
        invalid = word == INVALID_MSISDN
        reachable = False if invalid else _REACHABLE.get(word)
        error = None
        if reachable is None:
            error = f"{self.name} answered connectivity_status {_word(item.connectivity_status)}"
            if item.error_code is not None:
                error += f" (error_code {_word(item.error_code)})"
        porting, roaming = _porting(item), _roaming(item)
        return LiveAnswer(
            number=number,
            reachable=reachable,
            invalid=invalid,
            error=error,
            checked_at=checked_at,
            cost_micros=cost,
            ported_known=porting.known,
            ported_mccmnc=porting.mccmnc,
            ported_name=porting.name,
            ported_country=porting.country,
            roaming=roaming.roaming,
            roaming_name=roaming.name,
            roaming_country=roaming.country,
        )

    async def close(self) -> None:
        await self._http.close()
