"""HTTP for the provider kinds: pooled connections, and every failure as a ``SourceError`` in our own words.

Why shared: each provider kind (Messente-compatible, Infobip, HLR-Lookups,
Twilio, tyntec) sends JSON over HTTPS and fails the same ways — refused,
reset, timed out, 401/403 for our credentials, 402 for our credit, 429 with a
``Retry-After``, 5xx. One place maps those onto the reasons a client may see
(never a provider's internals, never our credentials) and onto the failover and
back-off the dispatcher applies.

Connections: httpcore's pool matches every waiting request against every
connection on each change, and asks each connection's socket whether it is
still readable, so its cost grows with the square of its size (with one pool of
128 connections, half of a worker's time under a burst went there, py-spy; with
pools of 8 taken in turn, still 1.5 ms of the event loop per request). So each
pool holds one connection, and a request takes the pool that most recently
finished one (a stack of idle pools): sequential requests keep reusing one warm
connection, concurrent ones get a connection each, and only when every pool is
busy does a request queue, in turn, behind one.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from numlookup.live.source import SourceError

# A Retry-After we honour at most this long: a provider's typo must not silence a source for a day.
MAX_RETRY_AFTER_SECONDS = 300.0
DEFAULT_RETRY_AFTER_SECONDS = 1.0


class HttpClients:
    """Pools of one HTTP/1.1 connection each to one provider, the most recently idle taken first."""

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
        # One TLS context for all of them, made as httpx makes its default one (SSL_CERT_FILE, SSL_CERT_DIR,
        # else certifi's bundle): loading the CA bundle takes 40 ms, which each client did on its own.
        tls = httpx.create_ssl_context()
        self._clients = [
            httpx.AsyncClient(
                verify=tls,
                auth=auth,
                timeout=timeout,
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                headers={"Accept": "application/json", **(headers or {})},
                follow_redirects=False,
            )
            for _ in range(max(1, max_connections))
        ]
        # Pools with no request in flight, the most recently used on top; a pool is on it at most once.
        self._idle = list(reversed(self._clients))
        self._in_flight = dict.fromkeys(map(id, self._clients), 0)
        self._next = itertools.cycle(self._clients)  # when every pool is busy: queue behind each in turn

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
        client = self._idle.pop() if self._idle else next(self._next)
        self._in_flight[id(client)] += 1
        try:
            response = await client.request(method, url, content=content, params=params, headers=headers)
        except httpx.TimeoutException:
            raise SourceError(f"{self.name} timed out after {self.timeout:g} s") from None
        except httpx.ConnectError:
            raise SourceError(f"{self.name} refused the connection") from None
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
            raise SourceError(f"{self.name} broke the connection") from None
        except httpx.HTTPError as exc:
            raise SourceError(f"{self.name} failed ({type(exc).__name__})") from None
        finally:
            self._in_flight[id(client)] -= 1
            if not self._in_flight[id(client)]:
                self._idle.append(client)
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
