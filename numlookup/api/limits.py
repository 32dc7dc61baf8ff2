"""Abuse protection at the edge: rate limits, auth-failure throttling, body size and body deadline.

Everything here is in-process state of one worker. uvicorn workers share
nothing, and a shared store (Redis, the database) would put a network round trip
in front of every request; so with ``workers = N`` a client that spreads its
connections over every worker can reach up to N times a configured rate. One
keep-alive connection stays on one worker and sees the configured rate exactly.

The state is touched only from the event loop (the guard is ASGI middleware and
never awaits between reading and updating a bucket), so it needs no locks.
"""

from __future__ import annotations

import asyncio
import math
import time
import types
from collections import OrderedDict, deque
from collections.abc import Awaitable, Coroutine, Generator, Iterable
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from numlookup.api.auth import CLIENT_IP, parse_basic
from numlookup.api.errors import (
    ApiError,
    body_stalled,
    body_timeout,
    body_too_large,
    error_response,
    too_many_requests,
)
from numlookup.api.proxies import TrustedProxies, limit_key
from numlookup.settings import Settings

# Probes must answer even while a client (or a load balancer's own address) is throttled.
UNLIMITED_PATHS = frozenset({"/healthz", "/readyz"})
# The admin API is not held to the lookups' request rates: an operator's script comes
# from the addresses its lookups come from, and would spend their allowance (or they
# its). Its token is still guarded: a wrong one counts as a failed authentication,
# and an address serving that penalty is refused here too.
ADMIN_PREFIX = "/admin/"
# Dataset uploads are large and slow by nature; they are authenticated (bearer token)
# before their body is read and stream it to a temporary file, never to memory.
UNBOUNDED_BODY_PREFIX = "/admin/v1/datasets/"
# A bulk job's upload: bounded by max_job_bytes (a JSON body by max_job_json_bytes), not
# max_body_bytes, and held to body_timeout_seconds between its pieces, not for all of it.
JOBS_PATH = "/v1/hlr/jobs"
# The console's upload form (multipart) is a job's upload too: the same limits as a file body.
CONSOLE_JOBS_PATH = "/console/account/jobs"
# The console's logins: a POST to one presents credentials as an Authorization header does, so
# it is refused while the address serves a penalty, and its 401 (a refused login) counts as a
# failed authentication exactly as the API's does.
LOGIN_PATHS = frozenset({"/console/login", "/console/operator/login"})
# The scope state's key holding the guard, for routes that authenticate without a Basic header
# (the console's lookup box and upload): they spend their account's token through it.
GUARD = "abuse_guard"
MAX_KEYS = 100_000  # per table; beyond it the least recently seen key is forgotten


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


class TokenBuckets:
    """One token bucket per key: ``rate`` tokens a second, at most ``burst`` saved up.

    Buckets are kept in least-recently-used order and a bucket that has refilled
    completely is dropped (it is the same as no bucket), so memory follows the
    number of clients active in the last ``burst / rate`` seconds, capped at
    ``max_keys``.
    """

    def __init__(self, rate: float, burst: int, max_keys: int = MAX_KEYS) -> None:
        self.rate = rate
        self.burst = float(max(1, burst or math.ceil(rate)))
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, key: str, now: float) -> float:
        """Spend one token: 0.0 if there was one, else the seconds until there will be."""
        self._forget_full(now)
        bucket = self._buckets.pop(key, None) or _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        self._buckets[key] = bucket
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate

    def give_back(self, key: str) -> None:
        """Refund a token spent on a request that turned out not to count."""
        bucket = self._buckets.get(key)
        if bucket is not None:
            bucket.tokens = min(self.burst, bucket.tokens + 1.0)

    def _forget_full(self, now: float) -> None:
        refill = self.burst / self.rate
        while self._buckets:
            key, oldest = next(iter(self._buckets.items()))
            if now - oldest.stamp < refill:
                return
            del self._buckets[key]


@dataclass(slots=True)
class _Failures:
    times: deque[float] = field(default_factory=deque)
    blocked_until: float = 0.0


class AuthFailures:
    """Throttles password guessing per client key.

    The rule: ``limit`` rejected credentials from one key within ``window``
    seconds block that key for ``penalty`` seconds. While blocked, its requests
    that carry credentials are answered 429 without the credentials being
    checked, so guesses are neither tested nor counted, and the penalty is not
    extended by them. When it ends the count starts from zero: a client that now
    sends the right password gets in at once, and a guesser gets at most
    ``limit`` tries per ``penalty`` seconds. Other keys are never affected.
    Successes do not reset the count, so a client holding one valid account
    cannot launder guesses against others.
    """

    def __init__(self, limit: int, window: float, penalty: float, max_keys: int = MAX_KEYS) -> None:
        self.limit = limit
        self.window = window
        self.penalty = penalty
        self.max_keys = max_keys
        self._keys: OrderedDict[str, _Failures] = OrderedDict()

    def penalty_left(self, key: str, now: float) -> float:
        entry = self._keys.get(key)
        if entry is None or entry.blocked_until <= now:
            return 0.0
        return entry.blocked_until - now

    def failed(self, key: str, now: float) -> None:
        self._forget_stale(now)
        entry = self._keys.pop(key, None) or _Failures()
        self._keys[key] = entry
        if len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)
        if entry.blocked_until > now:
            return
        while entry.times and entry.times[0] <= now - self.window:
            entry.times.popleft()
        entry.times.append(now)
        if len(entry.times) >= self.limit:
            entry.times.clear()
            entry.blocked_until = now + self.penalty

    def _forget_stale(self, now: float) -> None:
        while self._keys:
            key, oldest = next(iter(self._keys.items()))
            last = oldest.times[-1] if oldest.times else 0.0
            if oldest.blocked_until > now or last > now - self.window:
                return
            del self._keys[key]


def retry_after(seconds: float) -> int:
    """Whole seconds, rounded up, at least 1: a client retrying then will find a token."""
    return max(1, math.ceil(seconds))


class AbuseGuard:
    """ASGI middleware in front of every route.

    In order: resolve the client address (see ``proxies``) for everything behind;
    spend the client IP's token; refuse credentialed requests from an IP serving
    an auth-failure penalty; refuse a declared ``Content-Length`` over the limit
    before a byte of the body is read (with ``Expect: 100-continue`` the client
    never sends it); spend the presented username's token; then let the route run
    with a ``receive`` that stops the body at ``max_body_bytes`` (413) and at
    ``body_timeout_seconds`` after the route starts reading it (408). All of these
    come before any charge, so a refused request costs nothing. Admin requests
    (``ADMIN_PREFIX``) skip both rate limits but not the auth-failure penalty.

    The per-account limit is keyed by the presented Basic username before the
    password is checked, so it can refuse early; a token spent on a request that
    then fails authentication (401) is given back, so knowing a username is not
    enough to exhaust that account's allowance.
    """

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.proxies = TrustedProxies(settings.trusted_proxies)
        self.per_ip = (
            TokenBuckets(settings.rate_limit_per_ip, settings.rate_limit_per_ip_burst)
            if settings.rate_limit_per_ip
            else None
        )
        self.per_account = (
            TokenBuckets(settings.rate_limit_per_account, settings.rate_limit_per_account_burst)
            if settings.rate_limit_per_account
            else None
        )
        self.failures = (
            AuthFailures(
                settings.auth_failure_limit, settings.auth_failure_window_seconds, settings.auth_failure_penalty_seconds
            )
            if settings.auth_failure_limit
            else None
        )
        self.max_body = settings.max_body_bytes
        self.max_job_body = settings.max_job_bytes
        self.max_job_json = settings.max_job_json_bytes
        self.body_timeout = settings.body_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = GuardHeaders(scope["headers"])
        peer = scope["client"][0] if scope.get("client") else None
        client = self.proxies.client_address(peer, headers.forwarded_for)
        scope.setdefault("state", {})[CLIENT_IP] = client
        scope["state"][GUARD] = self
        path: str = scope["path"]
        if path in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return

        key = limit_key(client)
        now = time.monotonic()
        credentialed = headers.authorization is not None or (path in LOGIN_PATHS and scope["method"] == "POST")
        rated = not path.startswith(ADMIN_PREFIX)
        bounded = not path.startswith(UNBOUNDED_BODY_PREFIX)
        limit, idle = self.max_body, False
        if path in (JOBS_PATH, CONSOLE_JOBS_PATH) and scope["method"] == "POST":
            media = (headers.content_type or "").split(";", 1)[0].strip().lower()
            limit, idle = (self.max_job_json if media == "application/json" else self.max_job_body), True
        refusal, account = self.admit(
            headers, key, now, credentialed=credentialed, rated=rated, limit=limit if bounded else None
        )
        body = BoundedBody(receive, limit, self.body_timeout, headers.has_body() and bounded, idle=idle)
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                response_headers = list(message.get("headers", []))
                if not body.complete and not any(name.lower() == b"connection" for name, _ in response_headers):
                    # Answered before the body was read (a 401 or 429, say): reading and
                    # discarding the rest would let a client hold the connection as long
                    # as it keeps sending, so end it instead.
                    message["headers"] = [*response_headers, (b"connection", b"close")]
            await send(message)

        if refusal is not None:
            await error_response(refusal)(scope, receive, watch)
            return
        try:
            await self.app(scope, body.receive if bounded else receive, watch)
        finally:
            if status == 401 and credentialed:
                self.refused_credentials(key, account)

    def admit(
        self, headers: GuardHeaders, key: str, now: float, *, credentialed: bool, rated: bool, limit: int | None
    ) -> tuple[ApiError | None, str | None]:
        """The guard's checks, in order: its refusal (None: let it in), and the account whose token it spent.

        ``limit`` is the body limit a declared ``Content-Length`` is held to (None: the
        body is unbounded). The sync route's fused edge (``api.sync_edge``) makes the
        same checks through here, so the two paths cannot drift apart.
        """
        refusal = self._refusal(key, credentialed, now, rated)
        if refusal is None and limit is not None:
            refusal = self._declared_too_large(headers, limit)
        account: str | None = None
        if (
            refusal is None
            and rated
            and self.per_account is not None
            and (presented := parse_basic(headers.authorization))
        ):
            if wait := self.per_account.take(presented[0], now):
                refusal = too_many_requests(retry_after(wait), "this account's request rate limit is exceeded.")
            else:
                account = presented[0]
        return refusal, account

    def refused_credentials(self, key: str, account: str | None) -> None:
        """A credentialed request was answered 401: count the failure, give the account's token back."""
        if self.failures is not None:
            self.failures.failed(key, time.monotonic())
        if account is not None and self.per_account is not None:
            self.per_account.give_back(account)

    def account_wait(self, username: str) -> float:
        """Spend ``username``'s token as its Basic credentials would have here: 0.0, or the seconds until one."""
        if self.per_account is None:
            return 0.0
        return self.per_account.take(username, time.monotonic())

    def _refusal(self, key: str, credentialed: bool, now: float, rated: bool) -> ApiError | None:
        if rated and self.per_ip is not None and (wait := self.per_ip.take(key, now)):
            return too_many_requests(retry_after(wait), "this client address's request rate limit is exceeded.")
        if credentialed and self.failures is not None and (left := self.failures.penalty_left(key, now)):
            return too_many_requests(retry_after(left), "too many failed authentications from this client address.")
        return None

    def _declared_too_large(self, headers: GuardHeaders, limit: int) -> ApiError | None:
        declared = headers.content_length or ""
        if declared.isdigit() and int(declared) > limit:
            return body_too_large(limit)
        return None


class GuardHeaders:
    """The request headers the edge reads, found in one pass over the scope's (first value of each, as Starlette's).

    Why: each lookup through Starlette's ``Headers`` scans and decodes every header
    again, and the guard asked five times per request. The sync route's fused edge
    (``api.sync_edge``) reads its own two from the same pass: the ``User-Agent``
    and every ``Idempotency-Key`` (as ``getlist``: two keys are a 400, whatever they say).
    """

    __slots__ = (
        "authorization",
        "content_length",
        "content_type",
        "forwarded_for",
        "idempotency_keys",
        "transfer_encoding",
        "user_agent",
    )

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        self.authorization: str | None = None
        self.content_length: str | None = None
        self.content_type: str | None = None
        self.forwarded_for: list[str] = []
        self.transfer_encoding = False
        self.user_agent: str | None = None
        self.idempotency_keys: list[str] = []
        for name, value in raw:  # ASGI servers give the names in lower case, as Starlette's Headers assumes
            if name == b"authorization":
                if self.authorization is None:
                    self.authorization = value.decode("latin-1")
            elif name == b"content-length":
                if self.content_length is None:
                    self.content_length = value.decode("latin-1")
            elif name == b"content-type":
                if self.content_type is None:
                    self.content_type = value.decode("latin-1")
            elif name == b"user-agent":
                if self.user_agent is None:
                    self.user_agent = value.decode("latin-1")
            elif name == b"idempotency-key":
                self.idempotency_keys.append(value.decode("latin-1"))
            elif name == b"x-forwarded-for":
                self.forwarded_for.append(value.decode("latin-1"))
            elif name == b"transfer-encoding":
                self.transfer_encoding = True

    def has_body(self) -> bool:
        """Whether the request declares a body (a length above zero, or chunks): one the guard must bound."""
        return (self.content_length if self.content_length is not None else "0") not in ("", "0") or (
            self.transfer_encoding
        )


class BoundedBody:
    """The route's ``receive``: counts body bytes and holds the body to its deadline.

    The deadline starts when the route first asks for the body, so time the
    server spends before reading (checking credentials) is not the client's.
    Once the body is complete, calls pass straight through: waiting for a
    disconnect is not a slow body.
    """

    def __init__(self, receive: Receive, limit: int, timeout: float, expected: bool, *, idle: bool = False) -> None:
        """``idle``: ``timeout`` is the longest pause between pieces of the body, not a deadline for all of it."""
        self._receive = receive
        self.limit = limit
        self.timeout = timeout
        self.idle = idle
        self.received = 0
        self.deadline: float | None = None
        self.complete = not expected

    def take(self, body: bytes) -> bytes:
        """``body``, the whole of it, taken without ``receive``: counted and held to the limit as its message would be.

        Why: the plain path's body has nearly always arrived with its headers, and
        three coroutines (this receive, uvicorn's and its event's wait) handed it
        over as a message to be read back: 2 % of a request's bytecode (bench/bytecodes.py).
        """
        self.received += len(body)
        if self.received > self.limit:
            raise body_too_large(self.limit)
        self.complete = True
        return body

    async def receive(self) -> Message:
        if self.complete:
            return await self._receive()
        now = time.monotonic()
        if self.deadline is None or self.idle:
            self.deadline = now + self.timeout
        # Step the server's receive once: a body already read (nearly every request's) is
        # answered without waiting, and needs no timer. Only one that must wait is timed.
        pending = self._receive()
        message: Message | None = None
        rest: Awaitable[Message] = pending
        if isinstance(pending, types.CoroutineType):  # uvicorn's: else, the whole of it is timed
            try:
                rest = _resumed(pending, pending.send(None))
            except StopIteration as answered:
                message = answered.value
        if message is None:
            try:
                async with asyncio.timeout(max(self.deadline - now, 0.001)):  # no extra task, unlike wait_for
                    message = await rest
            except TimeoutError:
                raise (body_stalled(self.timeout) if self.idle else body_timeout(self.timeout)) from None
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                raise body_too_large(self.limit)
            self.complete = not message.get("more_body", False)
        return message


@types.coroutine
def _resumed(coroutine: Coroutine[Any, Any, Message], awaited: Any) -> Generator[Any, Any, Message]:
    """Await the rest of ``coroutine``, which was stepped once and is waiting on ``awaited``.

    What ``await coroutine`` would have done from there (PEP 380's delegation): what
    the task sends or throws goes to the coroutine, what it waits on goes to the task.
    """
    while True:
        try:
            sent = yield awaited
        except GeneratorExit:
            coroutine.close()
            raise
        except BaseException as exc:  # a cancellation (the timeout's included): the coroutine's to handle
            try:
                awaited = coroutine.throw(exc)
            except StopIteration as done:
                result: Message = done.value
                return result
        else:
            try:
                awaited = coroutine.send(sent)
            except StopIteration as done:
                result = done.value
                return result
