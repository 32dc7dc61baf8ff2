"""``Idempotency-Key`` (draft-ietf-httpapi-idempotency-key-header-06): a retried POST replays, never re-charges.

Why: a client whose request timed out or met a 502 cannot tell whether it was
charged. With a key, it sends the same request again: if the first one
completed, the stored response (status, headers that matter, body: the same
``request_id``) is replayed and nothing more is charged; if it is still
running, 409 (retry a moment later); the same key with another body or on
another route, 422 (a client bug: a new request needs a new key).

How, for any route (``POST /v1/hlr/sync`` now, ``POST /v1/hlr/jobs`` later):

1. after authentication and body validation (a request refused by those is not
   remembered: nothing ran), ``IdempotencyStore.begin`` commits an in-flight
   row for (account, key) with a fingerprint (SHA-256 of route and body bytes)
   and a lease of ``idempotency_lease_seconds``, or answers from an existing row;
2. the route does its work and builds its response, then hands
   ``claim.completed(...)`` to the transaction that charges it: for the sync
   route the group charger's ``store_attached`` (``IdempotencyStore.store``, in
   the charge's own transaction, so "charged" and "replayable" commit together);
   a route with its own transaction (a job's submit) calls ``store`` inside it;
   a response that charged nothing is stored with ``complete``;
3. if the route fails before that (an error answer, which charged nothing), the
   row is released (``release``): errors are not replayed, the same key may try
   again (after a top-up, say). A request cancelled mid-way keeps its row until
   the lease ends, because its charge may still commit.

Keys are per account (the row's key is account and key, so one client cannot
read another's responses with a guessed key) and expire ``idempotency_ttl_hours``
(24) after their first request; ``follow`` deletes expired rows, and an expired
row counts as absent before then. The key is an RFC 8941 sf-string
(``"8e03978e-…"``); a bare value of visible ASCII without quotes, as Stripe's
clients send, is accepted as the same key. At most 255 characters.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio.to_thread
from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from starlette.requests import Request
from starlette.responses import Response

from numlookup.api.errors import idempotency_key_in_use, idempotency_key_reused, invalid_idempotency_key
from numlookup.store.engine import write_transaction
from numlookup.store.tables import idempotency_keys

log = logging.getLogger("numlookup.api")
HEADER = "idempotency-key"
REPLAYED = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
RUNNING = "running"
DONE = "done"
# How often each worker deletes expired keys.
PRUNE_SECONDS = 600.0
_QUOTED = re.compile(r'^"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"$')
_BARE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")  # visible ASCII but " and \
_k = idempotency_keys


def parse_key(values: Sequence[str]) -> str | None:
    """The key from the header's values (None without the header); ``ApiError`` 400 for a malformed one."""
    if not values:
        return None
    if len(values) > 1:
        raise invalid_idempotency_key("send one Idempotency-Key header, not several")
    value = values[0].strip(" \t")
    quoted = _QUOTED.match(value)
    if quoted:
        key = re.sub(r"\\(.)", r"\1", quoted.group(1))
    elif _BARE.match(value):
        key = value
    else:
        raise invalid_idempotency_key(
            'it must be a structured-field string of printable ASCII, e.g. "8e03978e-40d5-43e8-bc93-6894a57f9324"'
        )
    if not key:
        raise invalid_idempotency_key("it is empty")
    if len(key) > MAX_KEY_LENGTH:
        raise invalid_idempotency_key(f"it is longer than {MAX_KEY_LENGTH} characters")
    return key


def fingerprint(route: str, body: bytes) -> str:
    return hashlib.sha256(route.encode() + b"\n" + body).hexdigest()


@dataclass(frozen=True, slots=True)
class Completed:
    """A response to remember, stored in the transaction that charges it (``IdempotencyStore.store``)."""

    account_id: int
    key: str
    token: str
    status: int
    headers: dict[str, str]
    body: bytes = field(repr=False)
    request_id: str


@dataclass(frozen=True, slots=True)
class Claim:
    """This request holds (account, key) until it completes, is released, or its lease ends."""

    account_id: int
    key: str
    token: str

    def completed(self, status: int, headers: dict[str, str], body: bytes, request_id: str) -> Completed:
        return Completed(self.account_id, self.key, self.token, status, headers, body, request_id)


@dataclass(frozen=True, slots=True)
class Stored:
    """A completed request's response, replayed as it was, its own request id included."""

    status: int
    headers: dict[str, str]
    body: bytes = field(repr=False)
    request_id: str

    def replayed_headers(self) -> dict[str, str]:
        """The headers a replay answers with: those stored, said to be replayed, and the first request's id."""
        return {**self.headers, REPLAYED: "true", "X-Request-Id": self.request_id}

    def response(self) -> Response:
        return Response(self.body, status_code=self.status, headers=self.replayed_headers())


class _InFlight:
    pass


class _Mismatch:
    pass


IN_FLIGHT = _InFlight()
MISMATCH = _Mismatch()
_Verdict = Stored | _InFlight | _Mismatch | None  # None: the key is free to take


def _verdict(row: Any, print_: str, now: datetime) -> _Verdict:
    """What an existing row means for a request with fingerprint ``print_``; None: take the key."""
    if row is None or row.expires_at <= now:
        return None
    if row.fingerprint != print_:
        return MISMATCH
    if row.state == DONE:
        return Stored(row.status, json.loads(row.headers), bytes(row.body), row.request_id)
    if row.lease_until is not None and row.lease_until > now:
        return IN_FLIGHT
    return None  # its request died holding it: the lease ran out


class IdempotencyStore:
    def __init__(self, engine: Engine, *, ttl: timedelta, lease: timedelta) -> None:
        self.engine = engine
        self.ttl = ttl
        self.lease = lease

    async def begin(
        self, request: Request, account_id: int, route: str, body: bytes, *, key: str | None = None
    ) -> Claim | Response | None:
        """None without a key; the replayed response of a completed request; else this request's claim.

        The key is the request's ``Idempotency-Key`` header, or ``key`` (the
        console's lookup form carries one in a field). Raises ``ApiError``: 400
        for a malformed key, 409 while another request holds it, 422 when it was
        used with another body or route.
        """
        began = await self.claim(account_id, route, body, [key] if key is not None else request.headers.getlist(HEADER))
        return began.response() if isinstance(began, Stored) else began

    async def claim(self, account_id: int, route: str, body: bytes, values: Sequence[str]) -> Claim | Stored | None:
        """``begin`` for a caller holding the header's ``values`` rather than a Starlette request.

        The sync route's fused edge (``api.sync_edge``) reads its headers in one pass
        and writes a replayed response's bytes itself, so it takes the stored response,
        not a ``Response`` built from it.
        """
        key = parse_key(values)
        if key is None:
            return None
        outcome = await anyio.to_thread.run_sync(self._claim, account_id, key, route, fingerprint(route, body))
        if isinstance(outcome, Claim | Stored):
            return outcome
        if isinstance(outcome, _Mismatch):
            raise idempotency_key_reused()
        raise idempotency_key_in_use()

    def _read(self, conn: Connection, account_id: int, key: str) -> Any:
        return conn.execute(select(_k).where(_k.c.account_id == account_id, _k.c.key == key)).first()

    def _claim(self, account_id: int, key: str, route: str, print_: str) -> Claim | Stored | _InFlight | _Mismatch:
        now = datetime.now(UTC)
        with self.engine.connect() as conn:  # the common answers need no write lock
            seen = _verdict(self._read(conn, account_id, key), print_, now)
        if seen is not None:
            return seen
        for _ in range(3):
            token = secrets.token_hex(16)
            values = {
                "route": route,
                "fingerprint": print_,
                "state": RUNNING,
                "token": token,
                "lease_until": now + self.lease,
                "status": None,
                "headers": None,
                "body": None,
                "request_id": None,
                "created_at": now,
                "expires_at": now + self.ttl,
            }
            try:
                with write_transaction(self.engine) as conn:
                    row = self._read(conn, account_id, key)
                    verdict = _verdict(row, print_, now)
                    if verdict is not None:
                        return verdict
                    if row is None:
                        conn.execute(insert(_k).values(account_id=account_id, key=key, **values))
                    else:
                        taken = conn.execute(
                            update(_k)
                            .where(_k.c.account_id == account_id, _k.c.key == key, _k.c.token == row.token)
                            .values(**values)
                        )
                        if taken.rowcount == 0:
                            continue  # another request took it in between: look again
                return Claim(account_id, key, token)
            except IntegrityError:  # PostgreSQL: a concurrent first request inserted the key first
                now = datetime.now(UTC)
                continue
        return IN_FLIGHT

    async def release(self, claim: Claim) -> None:
        """Free the key of a request that ended in an error (nothing was charged, nothing is replayed)."""
        try:
            await anyio.to_thread.run_sync(self._release, claim)
        except Exception as exc:  # the lease frees it instead
            log.warning("could not release an idempotency key: %s", exc)

    def _release(self, claim: Claim) -> None:
        with write_transaction(self.engine) as conn:
            conn.execute(
                delete(_k).where(
                    _k.c.account_id == claim.account_id,
                    _k.c.key == claim.key,
                    _k.c.token == claim.token,
                    _k.c.state == RUNNING,
                )
            )

    def store(self, conn: Connection, completed: Sequence[Completed]) -> None:
        """Inside the caller's (charge) transaction: the responses, each only where its request still holds the key."""
        for item in completed:
            done = conn.execute(
                update(_k)
                .where(_k.c.account_id == item.account_id, _k.c.key == item.key, _k.c.token == item.token)
                .values(
                    state=DONE,
                    status=item.status,
                    headers=json.dumps(item.headers),
                    body=item.body,
                    request_id=item.request_id,
                    lease_until=None,
                )
            )
            if done.rowcount == 0:  # its lease ran out and another request took the key
                log.warning(
                    "request %s: its idempotency key was taken over; its response is not stored", item.request_id
                )

    async def complete(self, completed: Completed) -> None:
        """Store a response that charged nothing, in its own transaction."""

        def run() -> None:
            with write_transaction(self.engine) as conn:
                self.store(conn, [completed])

        await anyio.to_thread.run_sync(run)

    def prune(self, now: datetime) -> int:
        """Delete expired keys; returns how many."""
        with self.engine.connect() as conn:
            if conn.execute(select(_k.c.key).where(_k.c.expires_at <= now).limit(1)).first() is None:
                return 0  # the usual case, without the write lock
        with write_transaction(self.engine) as conn:
            return int(conn.execute(delete(_k).where(_k.c.expires_at <= now)).rowcount)

    async def follow(self, interval: float = PRUNE_SECONDS) -> None:
        """Delete expired keys every ``interval`` seconds while the worker runs (a task of the app's lifespan)."""
        while True:
            await asyncio.sleep(interval)
            try:
                pruned = await anyio.to_thread.run_sync(self.prune, datetime.now(UTC))
            except Exception as exc:  # the database is away: next time
                log.warning("could not delete expired idempotency keys: %s", exc)
                continue
            if pruned:
                log.info("deleted %d expired idempotency keys", pruned)
