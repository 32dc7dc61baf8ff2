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
128 connections, half of a worker's time under a burst went there, py-spy).
So requests go to ``live.connections``' pool: at most ``max_connections``
connections, the most recently idle one taken first, so sequential requests keep
reusing one warm connection, concurrent ones get a connection each, and only
when all are busy does a request wait for one.

Sending: a request is built by httpx (its headers, parameters, timeouts: the
same bytes on the wire as httpx's client sends) and written by
``live.connections`` in one piece, its answer parsed by httptools (see there for
why not httpcore, which cost the event loop about 400 µs an upstream request:
bench/live_http.py); bench/live.py's burst sends 100 of them. httpx's client
around that (its auth flow, redirect and cookie handling, event hooks,
transport lookup and exception mapping) was about 40 % more again. Cookies an
upstream sets are not sent back.
Each request's head is httpx's, built once per kind of request and kept
(``_Template``): httpx's ``build_request`` merges the client's URL, headers,
cookies, parameters and timeouts anew for every call, 50 µs of the event loop's
CPU per upstream request (timeit, on the shared machine), to make the same
headers again but for the body's length; the kept head is copied with that
length set, and httpx's own ``Request`` (for ``response.request``) is made from
it when asked for (``_Response``). The builder's state never changes (no cookies are stored), so the same call
gives the same head. httpx builds a head it would then refuse to send (h11
checks each header before the bytes go out): the kept head is checked the same
way when it is built, so a value with a line break is refused, not sent.
When the environment names a proxy (``HTTP_PROXY`` and the like, which httpx
honours), requests go through httpx's clients as they did, so that proxy and its
``NO_PROXY`` exceptions still apply.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from numlookup.live.connections import Answer, HttpFailure, Origin, Pool
from numlookup.live.source import SourceError

# A Retry-After we honour at most this long: a provider's typo must not silence a source for a day.
MAX_RETRY_AFTER_SECONDS = 300.0
DEFAULT_RETRY_AFTER_SECONDS = 1.0
# How long an idle connection is kept: httpx's default, which the pools used before.
KEEPALIVE_SECONDS = 5.0

# Kinds of request whose head is kept (see the module's doc): a source that puts the number in the URL
# (Twilio) makes one per number, so the kept heads are dropped when there are this many.
MAX_TEMPLATES = 256

# A header's name and value as h11 (httpx's transport) checks them before it sends a request: a value from the
# settings (an API key read with its newline, say) must be refused as httpx refuses it, not written as two lines.
_FIELD_NAME = re.compile(rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_FIELD_VALUE = re.compile(rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?")

# How each way a request can fail reads after the source's name, on either path (httpx's failures mapped onto these).
_FAILURES = {
    "timeout": "timed out after {timeout:g} s",
    "connect": "refused the connection",
    "broken": "broke the connection",
    "protocol": "broke the connection",  # an answer that is not HTTP/1.1: as httpx's RemoteProtocolError
}


def environment_proxies() -> bool:
    """Does the environment name a proxy (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``, …) that httpx would use?"""
    return any(scheme != "no" for scheme in urllib.request.getproxies())


class _Template:
    """The head httpx builds for one kind of request: its URL, headers (and where its length goes), extensions."""

    __slots__ = ("authorization_at", "extensions", "headers", "length_at", "line", "method", "origin", "url")

    def __init__(self, request: httpx.Request, content: bytes | None) -> None:
        self.method = request.method
        self.url = request.url
        target = request.url
        default = 443 if target.scheme == "https" else 80
        self.origin: Origin = (target.scheme, target.host, target.port or default)
        self.line = b"%s %s HTTP/1.1\r\n" % (request.method.encode("ascii"), target.raw_path)  # the request line
        self.headers = list(request.headers.raw)
        for name, value in self.headers:
            if not _FIELD_NAME.fullmatch(name) or not _FIELD_VALUE.fullmatch(value):
                # httpx's own error, as its transport raises it (the value, perhaps a secret, not in its words)
                raise httpx.LocalProtocolError(f"illegal header {name[:64]!r}")
        self.extensions = request.extensions
        names = [name.lower() for name, _ in self.headers]
        # Where the body's length goes; None: the head is used as built (no body, or kept for this call only).
        self.length_at = names.index(b"content-length") if content is not None and self.fits(request, content) else None
        self.authorization_at = names.index(b"authorization") if b"authorization" in names else None

    @staticmethod
    def fits(request: httpx.Request, content: bytes | None) -> bool:
        """Is the only part of the head that depends on the body its Content-Length, stated as httpx states it?"""
        lengths = [value for name, value in request.headers.raw if name.lower() == b"content-length"]
        if content is None:
            return not lengths
        return lengths == [str(len(content)).encode()]

    def head(self, content: bytes | None, authorization: str | None) -> list[tuple[bytes, bytes]]:
        """The headers httpx's ``build_request`` (and its Basic auth flow, last) give a request with ``content``."""
        headers = list(self.headers)
        if self.length_at is not None and content is not None:
            headers[self.length_at] = (headers[self.length_at][0], str(len(content)).encode())
        if authorization is not None:  # as httpx's Headers set it: in place of the caller's own, else last
            if self.authorization_at is None:
                headers.append((b"Authorization", authorization.encode()))
            else:
                headers[self.authorization_at] = (b"Authorization", authorization.encode())
        return headers


class HttpClients:
    """Pools of one HTTP/1.1 connection each to one provider, the most recently idle taken first.

    ``via_httpx``: send through httpx's clients (as when the environment names a
    proxy, the default then) rather than straight to ``live.connections``' pool.
    """

    def __init__(
        self,
        name: str,
        *,
        timeout: float,
        max_connections: int,
        auth: tuple[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        via_httpx: bool | None = None,
    ) -> None:
        self.name = name
        self.timeout = timeout
        self.via_httpx = environment_proxies() if via_httpx is None else via_httpx
        # One TLS context for all of them, made as httpx makes its default one (SSL_CERT_FILE, SSL_CERT_DIR,
        # else certifi's bundle): loading the CA bundle takes 40 ms, which each client did on its own.
        tls = httpx.create_ssl_context()
        common = {"Accept": "application/json", **(headers or {})}
        # Builds each request as a client of these settings sends it: the bytes on the wire stay httpx's.
        self._builder = httpx.AsyncClient(timeout=timeout, headers=common, trust_env=False)
        self._authorization = _basic(auth) if auth is not None else None
        self._templates: dict[tuple[object, ...], _Template] = {}
        self._pool: Pool | None = None
        self._clients: list[httpx.AsyncClient] = []
        if self.via_httpx:
            self._clients = [
                httpx.AsyncClient(
                    verify=tls,
                    auth=auth,
                    timeout=timeout,
                    limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                    headers=common,
                    follow_redirects=False,
                )
                for _ in range(max(1, max_connections))
            ]
        else:
            self._pool = Pool(max_connections, KEEPALIVE_SECONDS, tls)
        # httpx's clients with no request in flight, the most recently used on top; each on it at most once.
        self._idle = list(reversed(self._clients))
        self._in_flight = dict.fromkeys(map(id, self._clients), 0)
        self._next = itertools.cycle(self._clients)  # when every client is busy: queue behind each in turn

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
            if self._pool is not None:
                response = await self._send(self._pool, method, url, content, params, headers)
            else:
                response = await self._via_httpx(method, url, content, params, headers)
        except HttpFailure as failure:
            raise SourceError(f"{self.name} {_FAILURES[failure.kind].format(timeout=self.timeout)}") from None
        except httpx.HTTPError as exc:  # any other of httpx's (decoding the answer: a body not the gzip it says)
            raise SourceError(f"{self.name} failed ({type(exc).__name__})") from None
        check_status(self.name, response)
        return response

    async def _via_httpx(
        self,
        method: str,
        url: str,
        content: bytes | None,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        """Through one of httpx's clients, the most recently idle first (as with a proxy the environment names).

        httpx's transport failures are raised as the direct path's (``HttpFailure``), for ``send`` to word alike.
        """
        client = self._idle.pop() if self._idle else next(self._next)
        self._in_flight[id(client)] += 1
        try:
            return await client.request(method, url, content=content, params=params, headers=headers)
        except httpx.TimeoutException:
            raise HttpFailure("timeout") from None
        except httpx.ConnectError:
            raise HttpFailure("connect") from None
        except (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError):
            raise HttpFailure("broken") from None
        finally:
            self._in_flight[id(client)] -= 1
            if not self._in_flight[id(client)]:
                self._idle.append(client)

    async def _send(
        self,
        pool: Pool,
        method: str,
        url: str,
        content: bytes | None,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        """The request httpx would send, in one write to the pool; the whole answer, decoded as httpx decodes it."""
        template = self._template(method, url, content, params, headers)
        raw = template.head(content, self._authorization)
        data = b"".join([template.line, *(b"%s: %s\r\n" % pair for pair in raw), b"\r\n", content or b""])
        answer = await pool.send(template.origin, data, self.timeout)
        return _response(template, raw, content, answer)

    def _template(
        self,
        method: str,
        url: str,
        content: bytes | None,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
    ) -> _Template:
        """The kept head of this kind of request, built by httpx the first time (see the module's doc)."""
        key = (
            method,
            url,
            None if content is None else bool(content),  # an empty body's Content-Length goes elsewhere in the head
            None if params is None else tuple(params.items()),
            None if headers is None else tuple(headers.items()),
        )
        template = self._templates.get(key)
        if template is not None:
            return template
        request = self._builder.build_request(method, url, content=content, params=params, headers=headers)
        template = _Template(request, content)
        if _Template.fits(request, content):  # else (a caller's own Content-Length, say) built anew each time
            if len(self._templates) >= MAX_TEMPLATES:
                self._templates.clear()
            self._templates[key] = template
        return template

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        await asyncio.gather(*(client.aclose() for client in self._clients), self._builder.aclose())


def _response(
    template: _Template, raw: list[tuple[bytes, bytes]], content: bytes | None, answer: Answer
) -> httpx.Response:
    """httpx's ``Response`` of a direct request's answer, decoded (Content-Encoding) as httpx's client decodes it."""
    response = _Response(
        answer.status,
        headers=answer.headers,
        stream=httpx.ByteStream(answer.body),
        extensions={"http_version": b"HTTP/1.1", "reason_phrase": answer.reason},
    )
    response.sent = (template, raw, content)
    response.read()  # undoes the Content-Encoding, as httpx's client does
    return response


class _Response(httpx.Response):
    """httpx's ``Response`` whose ``request`` is made when first asked for (the sources never ask).

    Made with every answer, httpx's ``Request`` was 5 µs of the loop an
    upstream request (timeit) for nothing: the sources read the status, the
    headers and the body. Asked for, it is the request httpx would have made.
    """

    sent: tuple[_Template, list[tuple[bytes, bytes]], bytes | None] | None = None

    @property
    def request(self) -> httpx.Request:
        if self._request is None and self.sent is not None:
            template, raw, content = self.sent
            request = httpx.Request(
                template.method,
                template.url,
                headers=raw,
                stream=httpx.ByteStream(content or b""),
                extensions=template.extensions,
            )
            request.read()  # its content readable, as a request httpx built with it
            self._request = request
        return super().request

    @request.setter
    def request(self, value: httpx.Request) -> None:
        self._request = value

    def raise_for_status(self) -> httpx.Response:
        self.request  # noqa: B018  # made, for httpx's error to name it
        return super().raise_for_status()


def _basic(auth: tuple[str, str]) -> str:
    """The ``Authorization`` header httpx's Basic auth sends for ``auth``."""
    request = httpx.Request("GET", "http://localhost/")
    return next(httpx.BasicAuth(*auth).auth_flow(request)).headers["Authorization"]


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
