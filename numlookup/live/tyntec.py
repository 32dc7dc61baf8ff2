"""The ``tyntec`` kind: tyntec Global Number Verification (``GET {url}/nis/v1/gnv?msisdn=+…``), one number a request.

tyntec asks the number's HLR and answers one ``GnvResponse`` (the spec:
tyntec/api-collection ``verify/v1/hlrLookup.yaml``). What each field means to us:

- ``errorCode``: "the reason for an unsuccessful attempt"; the spec's example
  is ``"0"``. Any other code means the attempt failed: nothing in the answer is
  read, reachability is unknown and ``error`` names the code. The spec lists
  no codes, so none is taken to mean "no such subscriber" (never ``invalid``).
- ``presence``, "the latest handset status (switched on/off) known by the
  operator (stored in the respective HLR)": ``"true"`` — switched on:
  reachable; ``"false"`` — switched off: not reachable; ``"unknown"`` or any
  other word: unknown, with tyntec's word kept in ``error``.
- ``ported`` (``"true"``/``"false"``/``"unknown"``) decides what the current
  network is, and the numbering data's range holder stays ``originalNetwork``
  (a live answer carries no original network; the rest of the answer — country,
  number type, names — comes from the same data):

  - ``"true"``: the current network is the IMSI's (``imsiMCC`` + ``imsiMNC``),
    the subscription network. No IMSI codes: porting stays unknown.
  - ``"false"``: the number is with its range holder. If tyntec's
    (``nrhMCC`` + ``nrhMNC``) is another operator than ours, one of the two range
    tables is wrong and tyntec's is the live provider's own, so the current
    network is tyntec's range holder (the answer then shows it as ported away
    from ours). Otherwise — the same network, or either side names none — not
    ported. The IMSI is not read here: an MVNO's subscribers carry its host's IMSI.
  - ``"unknown"``, absent, another word: porting unknown (the numbering data's
    answer stands); reachability still counts.

  A network of the same operator as ours (Vodafone's 26202 and 26209; the
  registry's ``operator`` in the same MCC) counts as ours, so a subscriber whose
  IMSI comes from another of its operator's codes is not called ported. That
  needs the registry: ``use_numbering`` gives it.
- ``roaming`` (same strings) + ``mscMCC``/``mscMNC``, the serving switch's
  network: ``"true"`` roams there (``mscOperator`` + ``mscCC`` when the codes are
  missing, else the ``msc`` global title); ``"false"`` at home; anything else
  unknown, with no serving network inferred.
- MCC/MNC: tyntec gives strings, the MNC with 2 or 3 digits as assigned; joined
  as the registry writes them (``262`` + ``02`` = ``26202``, ``310`` + ``260``),
  a zero-padded 3-digit MNC the registry holds with 2 (``001``) read as its 2-digit
  one. Anything else (not digits, an MNC given as a JSON number, whose leading
  zero is lost) is not read.
- ``price``/``currency``: not read; what a source costs us is the ``cost`` setting.

HTTP 400 ("an error in MSISDN") is an answer for the number: tyntec cannot tell,
and the route's next source is asked. Every other failure of the request is a
``SourceError`` in our words (401/403 our key, 402 our credit, 429, 5xx, a body
that is not a GNV answer, an asynchronous answer, an answer for another number).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from numlookup.live.http import HttpClients
from numlookup.live.source import LiveAnswer, SourceError
from numlookup.numbering import Resolver
from numlookup.source_settings import TyntecSettings

PATH = "/nis/v1/gnv"
SUCCESS = "0"  # errorCode of a successful attempt (the spec's example)
_NOT_NAME = re.compile(r"[^0-9a-z]+")
_WORD = re.compile(r"[^0-9A-Za-z_ .:/()-]+")

Flag = str | bool | None  # the spec's "true"/"false"/"unknown" strings; a JSON boolean read the same way
Code = str | int | None


class _Gnv(msgspec.Struct):
    """The fields of a ``GnvResponse`` numlookup reads; the others are ignored."""

    requestId: str | None = None
    msisdn: str | None = None
    ported: Flag = None
    roaming: Flag = None
    presence: Flag = None
    errorCode: Code = None
    nrhMCC: Code = None
    nrhMNC: Code = None
    imsiMCC: Code = None
    imsiMNC: Code = None
    mscMCC: Code = None
    mscMNC: Code = None
    mscCC: Code = None
    mscOperator: str | None = None
    msc: Code = None
    synchronous: bool | None = None


_decoder = msgspec.json.Decoder(_Gnv)


def _flag(value: Flag) -> str | None:
    """``"true"``/``"false"``/``"unknown"``/another word, lower case; None when absent or empty."""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = (value or "").strip().lower()
    return text or None


def _word(text: str) -> str:
    """A provider's word fit for a client's ``error``: printable, short."""
    return _WORD.sub("", text).strip()[:64] or "?"


def _digits(value: Code) -> str | None:
    text = str(value).strip().lstrip("+") if value is not None and not isinstance(value, bool) else ""
    return text if text.isascii() and text.isdigit() else None


def _folded(name: str) -> str:
    return _NOT_NAME.sub("", name.casefold())


class TyntecSource:
    """``name`` is ``upstream:<name>``; one number per request (``max_batch`` 1), requests run concurrently."""

    max_batch = 1

    def __init__(
        self,
        name: str,
        url: str,
        api_key: str,
        *,
        timeout: float = 3.0,
        max_connections: int = 64,
        resolver: Resolver | None = None,
    ) -> None:
        self.name = f"upstream:{name}"
        self.timeout = timeout
        self._url = url.rstrip("/") + PATH
        self._numbering = resolver
        self._http = HttpClients(
            self.name, timeout=timeout, max_connections=max_connections, headers={"apiKey": api_key}
        )

    @classmethod
    def from_settings(cls, name: str, settings: TyntecSettings, max_connections: int) -> TyntecSource:
        return cls(name, settings.url, settings.api_key, timeout=settings.timeout, max_connections=max_connections)

    def use_numbering(self, resolver: Resolver) -> None:
        """Compare tyntec's networks with the range holder and the registry's operators (see the module docstring)."""
        self._numbering = resolver

    async def query(self, numbers: Sequence[str], max_age: float | None = None) -> dict[str, LiveAnswer]:
        """One request per number, concurrently; a failed request fails the call.

        ``max_age`` is not sent: tyntec always asks the HLR.
        """
        answers = await asyncio.gather(*(self._ask(number) for number in numbers))
        return {answer.number: answer for answer in answers}

    async def _ask(self, number: str) -> LiveAnswer:
        digits = number.lstrip("+")
        # The spec's format, "+49569858597"; httpx sends the "+" as %2B, so it is not read as a space.
        response = await self._http.send("GET", self._url, params={"msisdn": f"+{digits}"})
        if response.status_code == 400:  # "An error in MSISDN": about this number, not the source
            reason = f"{self.name} refused the number as malformed (HTTP 400)"
            return LiveAnswer(number=number, reachable=None, error=reason, checked_at=datetime.now(UTC))
        if response.status_code != 200:
            raise SourceError(f"{self.name} refused the request (HTTP {response.status_code})")
        try:
            gnv = _decoder.decode(response.content)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise SourceError(f"{self.name} sent an answer that is not a GNV result") from None
        if gnv.synchronous is False:
            raise SourceError(f"{self.name} answered asynchronously; numlookup needs the synchronous answer")
        said = _digits(gnv.msisdn)
        if gnv.msisdn is not None and said != digits:
            raise SourceError(f"{self.name} answered for another number")
        return self.answer(number, gnv, datetime.now(UTC))

    def answer(self, number: str, gnv: _Gnv, now: datetime) -> LiveAnswer:
        """One GNV answer as ours: nothing when the attempt failed, else presence, porting and roaming."""
        code = str(gnv.errorCode).strip() if gnv.errorCode is not None else SUCCESS
        if code not in (SUCCESS, ""):
            failed = f"{self.name} could not look the number up (tyntec error code {_word(code)})"
            return LiveAnswer(number=number, reachable=None, ported_known=False, error=failed, checked_at=now)
        presence = _flag(gnv.presence)
        reachable: bool | None = {"true": True, "false": False}.get(presence or "")
        reason: str | None = None
        if reachable is None:
            reason = f"{self.name} answered presence {_word(presence)}" if presence else f"{self.name} gave no presence"
        ported_known, ported_mccmnc = self._porting(number, gnv)
        roaming, roaming_mccmnc, roaming_name, roaming_country, roaming_gt = self._roaming(gnv)
        return LiveAnswer(
            number=number,
            reachable=reachable,
            roaming=roaming,
            roaming_mccmnc=roaming_mccmnc,
            roaming_name=roaming_name,
            roaming_country=roaming_country,
            roaming_gt=roaming_gt,
            ported_known=ported_known,
            ported_mccmnc=ported_mccmnc,
            error=reason,
            checked_at=now,
        )

    def _porting(self, number: str, gnv: _Gnv) -> tuple[bool, str | None]:
        """(the answer states the current network, its MCC/MNC; None: the range holder's, not ported)."""
        ported = _flag(gnv.ported)
        ours = self._range_holder(number)
        if ported == "true":
            current = self._mccmnc(gnv.imsiMCC, gnv.imsiMNC)
            if current is None:
                return False, None  # ported, but to where tyntec does not say
            return True, ours if ours is not None and self._same_operator(current, ours) else current
        if ported == "false":
            holder = self._mccmnc(gnv.nrhMCC, gnv.nrhMNC)
            if holder is None or ours is None or self._same_operator(holder, ours):
                return True, None
            return True, holder  # tyntec's range holder is another operator than ours: the number is there
        return False, None

    def _roaming(self, gnv: _Gnv) -> tuple[bool | None, str | None, str | None, str | None, str | None]:
        """(roams, serving MCC/MNC, or its operator's name and calling code, or the serving switch's global title)."""
        roaming = {"true": True, "false": False}.get(_flag(gnv.roaming) or "")
        if roaming is not True:
            return roaming, None, None, None, None
        serving = self._mccmnc(gnv.mscMCC, gnv.mscMNC)
        if serving is not None:
            return True, serving, None, None, None
        name = "".join(ch for ch in gnv.mscOperator or "" if ch.isprintable()).strip()[:100] or None
        country = _digits(gnv.mscCC)
        if name is not None and country is not None:
            return True, None, name, country, None
        return True, None, None, None, _digits(gnv.msc) or country

    def _mccmnc(self, mcc: Code, mnc: Code) -> str | None:
        """MCC + MNC as the registry writes them, or None when tyntec's codes are not an MCC and an MNC."""
        if not isinstance(mnc, str):  # a JSON number lost the MNC's leading zero: 2 or 3 digits cannot be told
            return None
        mcc_digits, mnc_digits = _digits(mcc), _digits(mnc)
        if mcc_digits is None or mnc_digits is None or len(mcc_digits) != 3 or len(mnc_digits) not in (2, 3):
            return None
        mccmnc = mcc_digits + mnc_digits
        if self._numbering is not None and len(mnc_digits) == 3 and mnc_digits[0] == "0":
            records = self._numbering.networks.records
            if mccmnc not in records and mcc_digits + mnc_digits[1:] in records:
                return mcc_digits + mnc_digits[1:]
        return mccmnc

    def _range_holder(self, number: str) -> str | None:
        """The MCC/MNC of the number's range holder in the numbering data, None when it names none."""
        if self._numbering is None:
            return None
        [resolution] = self._numbering.resolve([number])
        original = resolution.original_network
        return original.mccmnc if original is not None else None

    def _same_operator(self, mccmnc: str, other: str) -> bool:
        """The same network, or two codes the registry gives to one operator in one MCC."""
        if mccmnc == other:
            return True
        if self._numbering is None:
            return False
        records = self._numbering.networks.records
        first, second = records.get(mccmnc), records.get(other)
        if first is None or second is None or first.mcc != second.mcc:
            return False
        operator = _folded(first.operator)
        return bool(operator) and operator == _folded(second.operator)

    async def close(self) -> None:
        await self._http.close()
