"""The webhook outbox: deliveries are rows, written with the event, claimed with a lease, retried on schedule.

Why rows and not sleeps: a delivery must survive a restart, a crash and a
deploy, and only one worker of one node may send it at a time. ``enqueue``
inserts the row inside the caller's transaction (the one that ends the job), so
"the job ended" and "its webhook will be sent" commit together. Each worker's
``DeliveryWorker`` claims due rows: one ``UPDATE … WHERE id IN (SELECT … FOR
UPDATE SKIP LOCKED) RETURNING`` sets a lease and a token (on SQLite, where
``FOR UPDATE`` renders as nothing, the write transaction's lock serialises
claims). A worker that dies mid-delivery leaves a lease that runs out after
``webhook_lease_seconds``; then any worker claims the row again. So delivery is
at least once: receivers deduplicate on ``webhook-id``, which never changes.

Every attempt is a row of ``webhook_attempts`` (status, error, time), and the
delivery's state moves: ``pending`` → ``delivered`` (2xx), or back to
``pending`` with ``next_attempt_at`` from the schedule, or ``failed`` (the
schedule ran out, or 410 Gone, which also turns the account's callbacks off),
or ``unsent`` (the account's callbacks were off). ``retry`` queues any delivery
again at once (``numlookup webhooks retry``).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from random import Random

from sqlalchemy import ColumnElement, Connection, Engine, func, insert, or_, select, update

from numlookup.store.engine import write_transaction
from numlookup.store.tables import accounts, webhook_attempts, webhook_deliveries
from numlookup.webhooks import guard, keys
from numlookup.webhooks.schedule import next_delay

log = logging.getLogger("numlookup.webhooks")

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
UNSENT = "unsent"
STATES = (PENDING, DELIVERED, FAILED, UNSENT)
ID_PREFIX = "msg_"
_EVENT_TYPE = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)*$")
_d = webhook_deliveries


class WebhookError(Exception):
    """An operator's request that cannot be done (an unknown delivery, callbacks turned off); the message says why."""


def new_webhook_id() -> str:
    """``msg_`` and 144 random bits, URL-safe base64: unique, unguessable, and without the ``.`` signing joins on."""
    return ID_PREFIX + secrets.token_urlsafe(18)


def event_body(event_type: str, data: bytes, now: datetime) -> bytes:
    """The Standard Webhooks payload ``{"type", "timestamp", "data"}``, with ``data`` (JSON bytes) as given."""
    head = json.dumps({"type": event_type, "timestamp": now.isoformat().replace("+00:00", "Z")})
    return head[:-1].encode() + b',"data":' + data + b"}"


def _is_envelope(payload: bytes, event_type: str) -> bool:
    try:
        decoded = json.loads(payload)
    except ValueError:
        raise ValueError("a webhook payload must be UTF-8 JSON") from None
    return isinstance(decoded, dict) and decoded.get("type") == event_type and {"timestamp", "data"} <= set(decoded)


def enqueue(conn: Connection, *, account_id: int, url: str, event_type: str, payload: bytes, now: datetime) -> str:
    """Insert a delivery inside the caller's transaction; returns its webhook-id (``msg_…``, no ``.``).

    ``payload`` is the body sent: an event body (``event_body``), or the event's
    ``data`` alone (any other JSON), which is then wrapped into one. The URL's form
    is checked here without DNS; call ``guard.check_url`` when the URL is
    submitted, and the worker checks its addresses again at every attempt. For an
    account whose callbacks are off (a 410), the row is recorded ``unsent``.
    """
    if not _EVENT_TYPE.match(event_type) or len(event_type) > 64:
        raise ValueError(f"event_type {event_type!r} must be dot-separated words of letters, digits and _")
    guard.parse(url)
    body = payload if _is_envelope(payload, event_type) else event_body(event_type, payload, now)
    hooks = keys.get(conn, account_id)
    off = hooks is not None and hooks.disabled
    webhook_id = new_webhook_id()
    conn.execute(
        insert(_d).values(
            webhook_id=webhook_id,
            account_id=account_id,
            url=url,
            event_type=event_type,
            payload=body,
            state=UNSENT if off else PENDING,
            attempts=0,
            next_attempt_at=None if off else now,
            last_error=_off_reason(hooks) if off and hooks is not None else None,
            created_at=now,
        )
    )
    return webhook_id


def _off_reason(hooks: keys.WebhookKeys) -> str:
    since = f"{hooks.disabled_at:%Y-%m-%d %H:%M:%S}Z" if hooks.disabled_at is not None else "now"
    return f"not sent: this account's callbacks are off since {since} ({hooks.disabled_reason})"


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery this worker holds the lease of, with what signing it needs. ``repr`` shows neither secret nor body."""

    id: int
    webhook_id: str
    account_id: int
    url: str
    event_type: str
    payload: bytes = field(repr=False)
    attempts: int
    secrets: tuple[str, ...] = field(repr=False)


def any_due(engine: Engine, now: datetime) -> bool:
    """Whether a claim would find work: a read, so idle workers never take SQLite's write lock."""
    with engine.connect() as conn:
        return conn.execute(select(_d.c.id).where(*_due(now)).limit(1)).first() is not None


def _due(now: datetime) -> tuple[ColumnElement[bool], ...]:
    return (
        _d.c.state == PENDING,
        _d.c.next_attempt_at <= now,
        or_(_d.c.lease_until.is_(None), _d.c.lease_until < now),
    )


def claim(engine: Engine, *, now: datetime, limit: int, lease: timedelta, token: str) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries to ``token`` until ``now + lease``; rows other workers hold are skipped."""
    due = (
        select(_d.c.id)
        .where(*_due(now))
        .order_by(_d.c.next_attempt_at, _d.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    with write_transaction(engine) as conn:
        rows = conn.execute(
            update(_d)
            .where(_d.c.id.in_(due.scalar_subquery()), *_due(now))
            .values(lease_until=now + lease, lease_token=token)
            .returning(
                _d.c.id, _d.c.webhook_id, _d.c.account_id, _d.c.url, _d.c.event_type, _d.c.payload, _d.c.attempts
            )
        ).all()
        signing = {account_id: keys.ensure(conn, account_id, now) for account_id in {r.account_id for r in rows}}
    return [
        Claimed(
            id=r.id,
            webhook_id=r.webhook_id,
            account_id=r.account_id,
            url=r.url,
            event_type=r.event_type,
            payload=bytes(r.payload),
            attempts=r.attempts,
            secrets=tuple(signing[r.account_id].signing_secrets(now)),
        )
        for r in sorted(rows, key=lambda r: r.id)
    ]


@dataclass(frozen=True, slots=True)
class Result:
    """What one attempt got: the receiver's status (None: no answer) or an error, and its Retry-After in seconds."""

    started_at: datetime
    duration_ms: int
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def record_attempt(
    engine: Engine,
    claimed: Claimed,
    result: Result,
    *,
    token: str,
    now: datetime,
    scale: float = 1.0,
    rng: Random | None = None,
) -> str:
    """Record the attempt and move the delivery on (delivered, due again later, failed, unsent); returns its state."""
    attempts = claimed.attempts + 1
    values: dict[str, object] = {
        "attempts": attempts,
        "last_status": result.status,
        "last_error": result.error,
        "last_attempt_at": result.started_at,
        "lease_until": None,
        "lease_token": None,
        "next_attempt_at": None,
    }
    with write_transaction(engine) as conn:
        number = conn.execute(
            select(func.coalesce(func.max(webhook_attempts.c.attempt), 0)).where(
                webhook_attempts.c.delivery_id == claimed.id
            )
        ).scalar_one()
        conn.execute(
            insert(webhook_attempts).values(
                delivery_id=claimed.id,
                attempt=int(number) + 1,
                started_at=result.started_at,
                duration_ms=result.duration_ms,
                status=result.status,
                error=result.error,
            )
        )
        if result.succeeded:
            state = DELIVERED
            values["delivered_at"] = now
        elif result.status == 410:
            state = FAILED
            values["last_error"] = "410 Gone: the receiver asked for no more callbacks; this account's are now off"
            _turn_off(conn, claimed, now)
        else:
            hooks = keys.get(conn, claimed.account_id)
            delay = next_delay(attempts, scale=scale, retry_after=result.retry_after, rng=rng)
            if hooks is not None and hooks.disabled:
                state = UNSENT
                values["last_error"] = f"{result.error or result.status}; {_off_reason(hooks)}"
            elif delay is None:
                state = FAILED
            else:
                state = PENDING
                values["next_attempt_at"] = now + delay
        values["state"] = state
        moved = conn.execute(update(_d).where(_d.c.id == claimed.id, _d.c.lease_token == token).values(**values))
        if moved.rowcount == 0:
            # The lease ran out and another worker holds the row: its outcome decides; the attempt stays recorded.
            log.warning("webhook %s: lease lost before attempt %d was recorded", claimed.webhook_id, attempts)
    return state


def _turn_off(conn: Connection, claimed: Claimed, now: datetime) -> None:
    """A 410: the account's callbacks off, and its other waiting deliveries recorded as unsent."""
    host = guard.parse(claimed.url).host
    keys.disable(conn, claimed.account_id, f"410 Gone from {host} for {claimed.webhook_id}", now)
    hooks = keys.get(conn, claimed.account_id)
    assert hooks is not None
    conn.execute(
        update(_d)
        .where(
            _d.c.account_id == claimed.account_id,
            _d.c.state == PENDING,
            _d.c.id != claimed.id,
            or_(_d.c.lease_until.is_(None), _d.c.lease_until < now),
        )
        .values(state=UNSENT, next_attempt_at=None, last_error=_off_reason(hooks))
    )


def release(engine: Engine, claimed: Sequence[Claimed], token: str) -> None:
    """Give leases back unfinished (a worker stopping): the rows are due again for any worker at once."""
    if not claimed:
        return
    with write_transaction(engine) as conn:
        conn.execute(
            update(_d)
            .where(_d.c.id.in_([c.id for c in claimed]), _d.c.lease_token == token)
            .values(lease_until=None, lease_token=None)
        )


# ------------------------------------------------------------------ for operators


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    webhook_id: str
    account: str
    url: str
    event_type: str
    state: str
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    last_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None


@dataclass(frozen=True, slots=True)
class Attempt:
    attempt: int
    started_at: datetime
    duration_ms: int
    status: int | None
    error: str | None


def _listing() -> object:
    return select(_d, accounts.c.name.label("account")).join(accounts, accounts.c.id == _d.c.account_id)


def _delivery(row: object) -> Delivery:
    return Delivery(**{name: getattr(row, name) for name in Delivery.__dataclass_fields__})


def list_deliveries(
    engine: Engine, *, account_id: int | None = None, states: Sequence[str] = (), limit: int = 50
) -> list[Delivery]:
    """The newest deliveries first, of one account or all, in ``states`` (all when empty)."""
    query = _listing().order_by(_d.c.id.desc()).limit(limit)  # type: ignore[attr-defined]  # a Select
    if account_id is not None:
        query = query.where(_d.c.account_id == account_id)
    if states:
        query = query.where(_d.c.state.in_(list(states)))
    with engine.connect() as conn:
        return [_delivery(row) for row in conn.execute(query)]


def get_delivery(engine: Engine, webhook_id: str) -> tuple[Delivery, list[Attempt]]:
    with engine.connect() as conn:
        row = conn.execute(_listing().where(_d.c.webhook_id == webhook_id)).first()  # type: ignore[attr-defined]
        if row is None:
            raise WebhookError(f"no webhook delivery {webhook_id!r}")
        attempts = conn.execute(
            select(webhook_attempts)
            .where(webhook_attempts.c.delivery_id == row.id)
            .order_by(webhook_attempts.c.attempt)
        )
        return _delivery(row), [
            Attempt(
                attempt=a.attempt, started_at=a.started_at, duration_ms=a.duration_ms, status=a.status, error=a.error
            )
            for a in attempts
        ]


def retry(engine: Engine, webhook_id: str, now: datetime) -> Delivery:
    """Queue a delivery again, due at once with a fresh schedule and the same webhook-id (a manual replay)."""
    with write_transaction(engine) as conn:
        row = conn.execute(select(_d).where(_d.c.webhook_id == webhook_id)).first()
        if row is None:
            raise WebhookError(f"no webhook delivery {webhook_id!r}")
        if row.state == PENDING and row.lease_until is not None and row.lease_until > now:
            raise WebhookError(f"{webhook_id} is being delivered right now")
        hooks = keys.get(conn, row.account_id)
        if hooks is not None and hooks.disabled:
            name = conn.execute(select(accounts.c.name).where(accounts.c.id == row.account_id)).scalar_one()
            raise WebhookError(
                f"the callbacks of account {name!r} are off ({hooks.disabled_reason}); "
                f"run `numlookup webhooks enable {name}` first"
            )
        conn.execute(
            update(_d)
            .where(_d.c.id == row.id)
            .values(state=PENDING, attempts=0, next_attempt_at=now, lease_until=None, lease_token=None)
        )
    delivery, _ = get_delivery(engine, webhook_id)
    return delivery
