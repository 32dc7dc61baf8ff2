"""HTTP for the provider kinds: pooled connections, and every failure as a ``SourceError`` in our own words.

Why shared: each provider kind (Messente-compatible, Infobip, HLR-Lookups,
Twilio, tyntec) sends JSON over HTTPS and fails the same ways — refused,
reset, timed out, 401/403 for our credentials, 402 for our credit, 429 with a
``Retry-After``, 5xx. One place maps those onto the reasons a client may see
(never a provider's internals, never our credentials) and onto the failover and
back-off the dispatcher applies.

Connections: httpcore's pool matches every waiting request against every
connection on each change, so its cost grows with the square of its size (with
one pool of 128 connections, half of a worker's time under a burst went there,
py-spy). Pools of ``CONNECTIONS_PER_POOL``, taken in turn, keep that small.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from numlookup.live.source import SourceError

CONNECTIONS_PER_POOL = 8
# A Retry-After we honour at most this long: a provider's typo must not silence a source for a day.
MAX_RETRY_AFTER_SECONDS = 300.0
DEFAULT_RETRY_AFTER_SECONDS = 1.0


class HttpClients:
    """Pools of HTTP/1.1 connections to one provider, used in turn."""

    def __init__(
        self,
        name: str,
        *,
        timeout: float,
        max_connections: int,
        auth: httpx.Auth | tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.timeout = timeout
        pools = max(1, -(-max_connections // CONNECTIONS_PER_POOL))
        per_pool = -(-max_connections // pools)
        self._clients = [
            httpx.AsyncClient(
                auth=auth,
                timeout=timeout,
                limits=httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool),
                headers={"Accept": "application/json", **(headers or {})},
                follow_redirects=False,
            )
            for _ in range(pools)
        ]
        self._next = itertools.cycle(self._clients)

    async def send(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One request; a transport failure or a status that means "this source cannot answer now" raises.

        Returns responses with a status below 400, and 4xx statuses other than
        401, 402, 403 and 429, which some providers use for a per-number answer
        (the caller reads those).
        """
        try:
            response = await next(self._next).request(method, url, content=content, params=params, headers=headers)
        except httpx.TimeoutException:
            raise SourceError(f"{self.name} timed out after {self.timeout:g} s") from None
        except httpx.ConnectError:
            raise SourceError(f"{self.name} refused the connection") from None
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
            raise SourceError(f"{self.name} broke the connection") from None
        except httpx.HTTPError as exc:
            raise SourceError(f"{self.name} failed ({type(exc).__name__})") from None
        check_status(self.name, response)
        return response

    async def close(self) -> None:
        await asyncio.gather(*(client.aclose() for client in self._clients))


def check_status(name: str, response: httpx.Response) -> None:
    """Raise for a status that says the source as a whole cannot answer (credentials, credit, rate, server)."""
    status = response.status_code
    if status in (401, 403):
        raise SourceError(f"{name} rejected our credentials (HTTP {status})")
    if status == 402:
        raise SourceError(f"{name} has no credits left for us (HTTP 402)")
    if status == 429:
        wait = retry_after(response.headers.get("retry-after"))
        raise SourceError(f"{name} is rate limiting us (HTTP 429; retry after {wait:g} s)", retry_after=wait)
    if status >= 500:
        raise SourceError(f"{name} had a server error (HTTP {status})")


def retry_after(value: str | None, now: datetime | None = None) -> float:
    """Seconds from a ``Retry-After`` header: delay-seconds or an HTTP date (RFC 9110 §10.2.3), bounded."""
    if not value:
        return DEFAULT_RETRY_AFTER_SECONDS
    text = value.strip()
    if text.isdigit():
        seconds = float(text)
    else:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return DEFAULT_RETRY_AFTER_SECONDS
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = (moment - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)
