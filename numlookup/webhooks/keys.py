"""Per-account webhook signing secrets (``whsec_`` + base64 of 32 random bytes), their rotation, and the 410 switch.

The secret must be recoverable to sign every delivery, so unlike the API
password it is stored as itself, in ``account_webhooks``: whoever can read the
database can sign as numlookup, as with any other credential the server must
use (protect the database and its backups accordingly). It is shown only by
``numlookup accounts webhook-secret NAME`` and never logged, put in metrics,
errors or the OpenAPI document.

An account gets its secret when it is first needed: the first
``webhook-secret NAME`` or the first delivery, whichever comes first (both
insert it if missing, and the loser of a race reads the winner's). ``rotate``
makes a new one and keeps the old for ``webhook_rotation_grace_hours`` (24 h by
default): meanwhile each delivery carries two signatures (``v1,<new> v1,<old>``),
so a receiver verifying with either secret accepts it and can switch at leisure.

A receiver's 410 Gone turns the account's callbacks off (``disable``): its new
events are recorded as unsent and none is delivered until an operator runs
``numlookup webhooks enable NAME`` (``enable``).
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, insert, select, update

from numlookup.store.engine import write_transaction
from numlookup.store.tables import account_webhooks
from numlookup.store.upsert import UPSERT_DIALECTS, upsert

PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


@dataclass(frozen=True, slots=True)
class WebhookKeys:
    """An account's webhook settings. ``repr`` hides the secrets, so a stray log line cannot leak them."""

    account_id: int
    secret: str
    previous_secret: str | None
    previous_until: datetime | None
    disabled_at: datetime | None
    disabled_reason: str | None

    def __repr__(self) -> str:
        return f"WebhookKeys(account_id={self.account_id}, disabled_at={self.disabled_at!r})"

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets a delivery at ``now`` is signed with: the current one, and the old one during its grace."""
        if self.previous_secret and self.previous_until is not None and now < self.previous_until:
            return [self.secret, self.previous_secret]
        return [self.secret]

    @property
    def disabled(self) -> bool:
        return self.disabled_at is not None


def _keys(row: object) -> WebhookKeys:
    return WebhookKeys(
        account_id=row.account_id,  # type: ignore[attr-defined]  # a Row of account_webhooks
        secret=row.secret,  # type: ignore[attr-defined]
        previous_secret=row.previous_secret,  # type: ignore[attr-defined]
        previous_until=row.previous_until,  # type: ignore[attr-defined]
        disabled_at=row.disabled_at,  # type: ignore[attr-defined]
        disabled_reason=row.disabled_reason,  # type: ignore[attr-defined]
    )


def get(conn: Connection, account_id: int) -> WebhookKeys | None:
    row = conn.execute(select(account_webhooks).where(account_webhooks.c.account_id == account_id)).first()
    return None if row is None else _keys(row)


def ensure(conn: Connection, account_id: int, now: datetime) -> WebhookKeys:
    """The account's settings, creating its secret if it has none yet, inside the caller's write transaction."""
    found = get(conn, account_id)
    if found is not None:
        return found
    values = {"account_id": account_id, "secret": new_secret(), "created_at": now, "updated_at": now}
    dialect = conn.dialect.name
    if dialect in UPSERT_DIALECTS:
        statement = upsert(dialect, account_webhooks)
        conn.execute(statement.on_conflict_do_nothing(index_elements=["account_id"]), values)
    else:
        conn.execute(insert(account_webhooks), values)
    found = get(conn, account_id)
    assert found is not None
    return found


def show(engine: Engine, account_id: int, now: datetime) -> WebhookKeys:
    """The account's settings (its secret made now if it had none)."""
    with write_transaction(engine) as conn:
        return ensure(conn, account_id, now)


def rotate(engine: Engine, account_id: int, now: datetime, grace: timedelta) -> WebhookKeys:
    """A new secret; the current one keeps signing too until ``now + grace``.

    Rotating again within a grace period drops the oldest: two secrets at most.
    """
    with write_transaction(engine) as conn:
        current = ensure(conn, account_id, now)
        conn.execute(
            update(account_webhooks)
            .where(account_webhooks.c.account_id == account_id)
            .values(
                secret=new_secret(),
                previous_secret=current.secret if grace > timedelta(0) else None,
                previous_until=now + grace if grace > timedelta(0) else None,
                updated_at=now,
            )
        )
        rotated = get(conn, account_id)
    assert rotated is not None
    return rotated


def disable(conn: Connection, account_id: int, reason: str, now: datetime) -> None:
    """Turn the account's callbacks off (a receiver answered 410), inside the caller's transaction."""
    ensure(conn, account_id, now)
    conn.execute(
        update(account_webhooks)
        .where(account_webhooks.c.account_id == account_id, account_webhooks.c.disabled_at.is_(None))
        .values(disabled_at=now, disabled_reason=reason, updated_at=now)
    )


def enable(engine: Engine, account_id: int, now: datetime) -> bool:
    """Turn the account's callbacks on again; False if they were on."""
    with write_transaction(engine) as conn:
        done = conn.execute(
            update(account_webhooks)
            .where(account_webhooks.c.account_id == account_id, account_webhooks.c.disabled_at.is_not(None))
            .values(disabled_at=None, disabled_reason=None, updated_at=now)
        )
    return done.rowcount > 0
