"""The delivery worker: a task of every server worker process that sends due webhooks.

Each pass claims due rows (``outbox.claim``: a lease, so several workers and
nodes never send one row at once), sends each in a task of its own, at most
``webhook_concurrency`` at a time, and records the outcome. One attempt:

- the URL's host is resolved and every address checked (``guard.resolve``),
  then the request goes to the first address itself, with the URL's host in the
  ``Host`` header and as the TLS server name (certificates are verified against
  it): the address checked is the address connected to, so DNS rebinding between
  the check and the connection cannot reach a private address;
- httpx with ``follow_redirects=False`` (a 3xx is a failure, as the
  specification says) and no proxies from the environment (``trust_env=False``),
  ``webhook_timeout_seconds`` (15 s) for the whole attempt, the response body
  never read, and no keep-alive (a pooled connection is keyed by address, so a
  TLS connection made for one host name could otherwise carry another's request);
- 2xx is success; 410 turns the account's callbacks off; 429 and 503 may carry
  ``Retry-After``, honoured as the earliest next attempt (bounded); anything
  else, a reset connection or a timeout waits for the schedule.

Logs name the delivery's webhook-id and the URL's host, never its path or query
(which may hold a receiver's token), the body or a secret.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import anyio.to_thread
from sqlalchemy import Engine

from numlookup import __version__
from numlookup.settings import Settings
from numlookup.webhooks import guard, outbox, signing
from numlookup.webhooks.outbox import Claimed, Result

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("numlookup.webhooks")
USER_AGENT = f"numlookup-webhooks/{__version__}"
# Statuses whose Retry-After is honoured (the specification's throttling answers).
THROTTLED = (429, 503)


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """``Retry-After`` as seconds from ``now``: delta-seconds or an HTTP date; None if absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())


class DeliveryWorker:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.allow_private = settings.webhook_allow_private
        self.timeout = settings.webhook_timeout_seconds
        self.lease = timedelta(seconds=settings.webhook_lease_seconds)
        self.poll = settings.webhook_poll_seconds
        self.concurrency = settings.webhook_concurrency
        self.scale = settings.webhook_retry_scale
        self.token = secrets.token_hex(16)  # this worker's leases
        self._inflight: dict[asyncio.Task[None], Claimed] = {}
        self._made: httpx.AsyncClient | None = None

    @property
    def _client(self) -> httpx.AsyncClient:
        """Made for the first delivery: a server that sends none (most) is spared importing httpx and its TLS setup.

        Those were a tenth of a second of every server's start (``bench/cli.py``, row 3).
        """
        if self._made is None:
            import httpx

            self._made = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout),
                follow_redirects=False,
                trust_env=False,
                headers={"user-agent": USER_AGENT},
                # No keep-alive: connections are pooled by address, and two hosts on one address
                # must not share a TLS connection made for the other's name.
                limits=httpx.Limits(max_keepalive_connections=0),
            )
        return self._made

    async def run(self) -> None:
        """Deliver until cancelled (a task of the app's lifespan)."""
        failing = False
        while True:
            try:
                await self._pass()
            except Exception as exc:  # the database is away: try again next pass
                if not failing:
                    log.warning("webhook deliveries: cannot claim: %s", exc)
                failing = True
            else:
                if failing:
                    log.info("webhook deliveries: claiming again")
                failing = False
            waiting = set(self._inflight)
            if waiting and len(waiting) >= self.concurrency:
                await asyncio.wait(waiting, timeout=self.poll, return_when=asyncio.FIRST_COMPLETED)
            else:
                await asyncio.sleep(self.poll)

    async def _pass(self) -> None:
        free = self.concurrency - len(self._inflight)
        if free <= 0:
            return
        now = datetime.now(UTC)
        if not await anyio.to_thread.run_sync(outbox.any_due, self.engine, now):
            return
        claimed = await anyio.to_thread.run_sync(
            lambda: outbox.claim(self.engine, now=now, limit=free, lease=self.lease, token=self.token)
        )
        for delivery in claimed:
            task = asyncio.get_running_loop().create_task(self._deliver(delivery))
            self._inflight[task] = delivery
            task.add_done_callback(self._inflight.pop)

    async def _deliver(self, delivery: Claimed) -> None:
        result = await self.attempt(delivery)
        try:
            state = await anyio.to_thread.run_sync(
                lambda: outbox.record_attempt(
                    self.engine, delivery, result, token=self.token, now=datetime.now(UTC), scale=self.scale
                )
            )
        except Exception as exc:  # not recorded: the lease runs out and the row is sent again
            log.warning("webhook %s: could not record attempt %d: %s", delivery.webhook_id, delivery.attempts + 1, exc)
            return
        host = _host(delivery.url)
        outcome = result.status if result.status is not None else result.error
        log.info(
            "webhook %s to %s: attempt %d: %s (%s)", delivery.webhook_id, host, delivery.attempts + 1, outcome, state
        )

    async def attempt(self, delivery: Claimed) -> Result:
        """One signed POST of the delivery's exact bytes to the address its URL's host resolves to now."""
        import httpx

        started_at = datetime.now(UTC)
        began = time.monotonic()

        def done(**outcome: object) -> Result:
            return Result(started_at=started_at, duration_ms=int((time.monotonic() - began) * 1000), **outcome)  # type: ignore[arg-type]  # Result's own fields

        try:
            async with asyncio.timeout(self.timeout):
                target, addresses = await guard.resolve(delivery.url, allow_private=self.allow_private)
                timestamp = int(time.time())
                headers = signing.headers(delivery.webhook_id, timestamp, delivery.payload, delivery.secrets)
                url = httpx.URL(delivery.url)
                headers["host"] = url.netloc.decode("ascii")
                extensions = {"sni_hostname": url.raw_host.decode("ascii")} if target.scheme == "https" else {}
                request = self._client.build_request(
                    "POST",
                    url.copy_with(host=str(addresses[0])),
                    content=delivery.payload,
                    headers=headers,
                    extensions=extensions,
                )
                response = await self._client.send(request, stream=True)
                await response.aclose()  # the status is the answer; the body is never read
        except guard.UnsafeUrl as exc:
            return done(error=f"refused: {exc}")
        except TimeoutError:
            return done(error=f"timed out after {self.timeout:g} s")
        except httpx.HTTPError as exc:
            return done(error=f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
        status = response.status_code
        retry_after = (
            retry_after_seconds(response.headers.get("retry-after"), datetime.now(UTC)) if status in THROTTLED else None
        )
        error = None
        if not 200 <= status < 300:
            error = f"HTTP {status}"
            if 300 <= status < 400:
                error += " (a redirect: not followed)"
        return done(status=status, error=error, retry_after=retry_after)

    async def close(self, grace: float = 5.0) -> None:
        """Stop: let deliveries in flight finish for up to ``grace`` seconds, then cancel the rest.

        The leases of those cancelled are given back, so the next process sends
        them at once (their receivers may then see the webhook-id twice).
        """
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=grace)
        unfinished = list(self._inflight.values())
        for task in list(self._inflight):
            task.cancel()
        if self._inflight:
            await asyncio.wait(list(self._inflight), timeout=grace)
        try:
            await anyio.to_thread.run_sync(outbox.release, self.engine, unfinished, self.token)
        except Exception as exc:  # their leases run out instead
            log.warning("webhook deliveries: could not release %d leases: %s", len(unfinished), exc)
        if self._made is not None:
            await self._made.aclose()


def _host(url: str) -> str:
    try:
        target = guard.parse(url)
    except guard.UnsafeUrl:
        return "?"
    return f"{target.scheme}://{target.host}:{target.port}"
