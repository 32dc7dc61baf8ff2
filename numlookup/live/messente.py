"""The ``messente`` kind: a live source that forwards numbers to any Messente-compatible Number Lookup API.

That is Messente itself or another numlookup. Numbers go in batches of the
upstream's limit, with our own credentials there; the upstream's status word,
whatever vocabulary its account uses (ONLINE/OFFLINE, ON/OFF, "true"/"false"),
is mapped back to reachable / not reachable / unknown. Every failure of the
upstream as a whole raises ``SourceError`` with a reason safe to show clients.

What the upstream says about a number it could not tell is put in our own words
(see :func:`could_not_tell`): its texts are its own, and a chained numlookup's
name its sources ("upstream:hlr-core timed out …"), a provider's its internals.
Only the subscriber states of a fixed list are passed on as they are.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from numlookup.live.http import HttpClients
from numlookup.live.source import LiveAnswer, SourceError
from numlookup.source_settings import MessenteSettings
from numlookup.status import INVALID, UNKNOWN, reachability


class _Network(msgspec.Struct):
    mccmnc: str | None = None


class _Result(msgspec.Struct):
    number: str
    status: str | bool | None = None
    roaming: bool | None = None
    roamingNetwork: _Network | None = None
    currentNetwork: _Network | None = None
    portedNetwork: _Network | None = None
    ported: bool | None = None
    error: str | None = None
    checkedAt: str | None = None


class _Success(msgspec.Struct):
    result: list[_Result]


_decoder = msgspec.json.Decoder(_Success)


def _checked_at(text: str | None) -> datetime | None:
    """The upstream's own ``checkedAt`` (a numlookup upstream sends it): the age of the fact, not of our request."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _current_mccmnc(item: _Result) -> str | None:
    """The network the upstream says the subscriber is on now, if it says: a porting fact.

    Its ``portedNetwork`` when it names one; when it says ``ported: false``, its
    ``currentNetwork`` (the home network). ``ported: null`` (an upstream numlookup
    without porting data) or no network with an MCC/MNC says nothing.
    """
    if item.portedNetwork is not None and item.portedNetwork.mccmnc:
        return item.portedNetwork.mccmnc
    if item.ported is False and item.currentNetwork is not None:
        return item.currentNetwork.mccmnc
    return None


# The per-number errors passed on as they are: subscriber states in the GSM MAP
# vocabulary HLRs answer with (Messente's own example is "Absent Subscriber"), facts
# about the number that name nobody's systems. Matched ignoring case and spacing.
SUBSCRIBER_STATES = {
    " ".join(state.casefold().split()): state
    for state in (
        "Absent Subscriber",
        "Unknown Subscriber",
        "Call Barred",
        "Teleservice Not Provisioned",
        "Illegal Subscriber",
        "Illegal Equipment",
        "Roaming Not Allowed",
        "Facility Not Supported",
    )
}
# Any other text is summed up by the first class its words show, or by none.
REASON_CLASSES = (
    (("timed out", "timeout"), "its lookup timed out"),
    (("circuit open", "unavailable"), "its source is unavailable"),
    (("refused", "rejected"), "its lookup was refused"),
    (("failed", "failure", "broke", "error"), "its lookup failed"),
)


def could_not_tell(name: str, status: str | bool | None, error: str | None) -> str:
    """Why upstream ``name`` gave no reachability for a number, in our words.

    A status word we do not read is not repeated (an upstream's own word could be
    anything); INVALID, a word of the wire, is. Of the upstream's ``error``, the part
    before any ``;`` (a numlookup upstream appends "; prefix based response used")
    is passed on if it is one of :data:`SUBSCRIBER_STATES`; otherwise the upstream
    "could not tell", with a reason class where its text shows one.
    """
    if status == INVALID:
        return f"{name} answered {INVALID}"
    if status not in (None, UNKNOWN):
        return f"{name} answered a status word numlookup does not know"
    said = " ".join((error or "").split(";", 1)[0].casefold().split())
    if said in SUBSCRIBER_STATES:
        return SUBSCRIBER_STATES[said]
    text = (error or "").casefold()
    for words, reason in REASON_CLASSES:
        if any(word in text for word in words):
            return f"{name} could not tell ({reason})"
    return f"{name} could not tell"


def _answer(name: str, number: str, item: _Result, now: datetime) -> LiveAnswer:
    reachable = reachability(item.status)
    error = could_not_tell(name, item.status, item.error) if reachable is None else None
    checked = _checked_at(item.checkedAt) or now
    return LiveAnswer(
        number=number,
        reachable=reachable,
        roaming=item.roaming,
        roaming_mccmnc=item.roamingNetwork.mccmnc if item.roamingNetwork else None,
        ported_mccmnc=_current_mccmnc(item),
        error=error,
        checked_at=min(checked, now),
    )


class MessenteSource:
    """``name`` is ``upstream:<name>``; ``max_batch`` the upstream's numbers-per-request limit."""

    def __init__(
        self,
        name: str,
        url: str,
        username: str,
        password: str,
        *,
        max_batch: int = 10,
        timeout: float = 3.0,
        max_connections: int = 64,
    ) -> None:
        self.name = f"upstream:{name}"
        self.max_batch = max_batch
        self.timeout = timeout
        self._url = url.rstrip("/") + "/hlr/sync"
        self._http = HttpClients(self.name, timeout=timeout, max_connections=max_connections, auth=(username, password))

    @classmethod
    def from_settings(cls, name: str, settings: MessenteSettings, max_connections: int) -> MessenteSource:
        return cls(
            name,
            settings.url,
            settings.username,
            settings.password,
            max_batch=settings.max_batch,
            timeout=settings.timeout,
            max_connections=max_connections,
        )

    async def query(self, numbers: Sequence[str], max_age: float | None = None) -> dict[str, LiveAnswer]:
        """One upstream request per ``max_batch`` numbers, concurrently; any failed batch fails the call."""
        if 0 < len(numbers) <= self.max_batch:  # the dispatcher's batches: one request, no task to gather
            return await self._batch(list(numbers), max_age)
        batches = [list(numbers[i : i + self.max_batch]) for i in range(0, len(numbers), self.max_batch)]
        answers: dict[str, LiveAnswer] = {}
        for part in await asyncio.gather(*(self._batch(batch, max_age) for batch in batches)):
            answers.update(part)
        return answers

    async def _batch(self, numbers: list[str], max_age: float | None) -> dict[str, LiveAnswer]:
        body: dict[str, object] = {"numbers": numbers}
        if max_age is not None:
            body["max_age"] = max_age  # our extension; Messente ignores unknown keys
        response = await self._http.send(
            "POST", self._url, content=msgspec.json.encode(body), headers={"Content-Type": "application/json"}
        )
        if response.status_code != 200:
            raise SourceError(f"{self.name} refused the request (HTTP {response.status_code})")
        try:
            results = _decoder.decode(response.content).result
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):  # nested past the recursion limit
            raise SourceError(f"{self.name} sent an answer that is not a Number Lookup result") from None
        now = datetime.now(UTC)
        if len(results) == len(numbers):  # one result per input, in input order: match by position
            return {asked: _answer(self.name, asked, item, now) for asked, item in zip(numbers, results, strict=True)}
        return {item.number: _answer(self.name, item.number, item, now) for item in results if item.number in numbers}

    async def close(self) -> None:
        await self._http.close()
