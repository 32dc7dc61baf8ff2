"""The ``messente`` kind: a live source that forwards numbers to any Messente-compatible Number Lookup API.

That is Messente itself or another numlookup. Numbers go in batches of the
upstream's limit, with our own credentials there; the upstream's status word,
whatever vocabulary its account uses (ONLINE/OFFLINE, ON/OFF, "true"/"false"),
is mapped back to reachable / not reachable / unknown. Every failure of the
upstream as a whole raises ``SourceError`` with a reason safe to show clients.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from numlookup.live.http import HttpClients
from numlookup.live.source import LiveAnswer, SourceError
from numlookup.source_settings import MessenteSettings
from numlookup.status import UNKNOWN, reachability


class _Network(msgspec.Struct):
    mccmnc: str | None = None


class _Result(msgspec.Struct):
    number: str
    status: str | bool | None = None
    roaming: bool | None = None
    roamingNetwork: _Network | None = None
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


def _answer(name: str, number: str, item: _Result, now: datetime) -> LiveAnswer:
    reachable = reachability(item.status)
    error = item.error
    if reachable is None and not error:
        error = (
            f"{name} answered status {item.status}" if item.status not in (None, UNKNOWN) else f"{name} could not tell"
        )
    checked = _checked_at(item.checkedAt) or now
    return LiveAnswer(
        number=number,
        reachable=reachable,
        roaming=item.roaming,
        roaming_mccmnc=item.roamingNetwork.mccmnc if item.roamingNetwork else None,
        ported_mccmnc=item.portedNetwork.mccmnc if item.portedNetwork else None,
        error=error if reachable is None else None,
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
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise SourceError(f"{self.name} sent an answer that is not a Number Lookup result") from None
        now = datetime.now(UTC)
        if len(results) == len(numbers):  # one result per input, in input order: match by position
            return {asked: _answer(self.name, asked, item, now) for asked, item in zip(numbers, results, strict=True)}
        return {item.number: _answer(self.name, item.number, item, now) for item in results if item.number in numbers}

    async def close(self) -> None:
        await self._http.close()
