"""The outbox on a real database: rows in the caller's transaction, leased claims, the schedule, 410, rotation."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select, update
from standardwebhooks import Webhook, WebhookVerificationError

from numlookup.accounts import get_account
from numlookup.store.engine import write_transaction
from numlookup.store.tables import webhook_attempts, webhook_deliveries
from numlookup.webhooks import keys, outbox, signing
from numlookup.webhooks.outbox import Claimed, Result
from numlookup.webhooks.schedule import JITTER, SCHEDULE
from tests.conftest import AccountFactory

LEASE = timedelta(seconds=60)
URL = "https://hooks.example.com/numlookup"


def _account(make_account: AccountFactory, engine: Engine) -> int:
    return get_account(engine, make_account().name).id


def _enqueue(engine: Engine, account_id: int, now: datetime, data: bytes = b'{"job_id": "j1"}') -> str:
    with write_transaction(engine) as conn:
        return outbox.enqueue(conn, account_id=account_id, url=URL, event_type="job.completed", payload=data, now=now)


def _row(engine: Engine, webhook_id: str) -> object:
    with engine.connect() as conn:
        return conn.execute(select(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id)).one()


def test_a_delivery_is_written_in_the_callers_transaction(engine: Engine, make_account: AccountFactory) -> None:
    account_id = _account(make_account, engine)
    now = datetime.now(UTC)
    with pytest.raises(RuntimeError), write_transaction(engine) as conn:
        lost = outbox.enqueue(conn, account_id=account_id, url=URL, event_type="job.failed", payload=b"{}", now=now)
        raise RuntimeError("the job's transaction fails")
    assert outbox.list_deliveries(engine) == []
    webhook_id = _enqueue(engine, account_id, now)
    assert webhook_id != lost and webhook_id.startswith("msg_") and "." not in webhook_id
    row = _row(engine, webhook_id)
    body = json.loads(row.payload)  # type: ignore[attr-defined]
    assert body == {"type": "job.completed", "timestamp": body["timestamp"], "data": {"job_id": "j1"}}
    assert datetime.fromisoformat(body["timestamp"]) == now
    assert row.state == outbox.PENDING and row.next_attempt_at == now  # type: ignore[attr-defined]


def test_an_event_body_is_sent_as_given(engine: Engine, make_account: AccountFactory) -> None:
    account_id = _account(make_account, engine)
    now = datetime.now(UTC)
    body = outbox.event_body("job.stopped", b'{"id": "x", "n": 1.50}', now)
    webhook_id = _enqueue_with(engine, account_id, now, "job.stopped", body)
    assert bytes(_row(engine, webhook_id).payload) == body  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="event_type"), write_transaction(engine) as conn:
        outbox.enqueue(conn, account_id=account_id, url=URL, event_type="job completed", payload=b"{}", now=now)
    with pytest.raises(ValueError, match="http"), write_transaction(engine) as conn:
        outbox.enqueue(conn, account_id=account_id, url="ftp://x/", event_type="job.failed", payload=b"{}", now=now)


def _enqueue_with(engine: Engine, account_id: int, now: datetime, event_type: str, payload: bytes) -> str:
    with write_transaction(engine) as conn:
        return outbox.enqueue(conn, account_id=account_id, url=URL, event_type=event_type, payload=payload, now=now)


def test_concurrent_claims_never_share_a_row_and_a_dead_claim_comes_back(
    engine: Engine, make_account: AccountFactory
) -> None:
    account_id = _account(make_account, engine)
    now = datetime.now(UTC)
    ids = {_enqueue(engine, account_id, now) for _ in range(30)}
    got: dict[str, list[Claimed]] = {}
    start = threading.Barrier(3)

    def claimer(token: str) -> None:
        start.wait()
        mine: list[Claimed] = []
        while batch := outbox.claim(engine, now=now, limit=4, lease=LEASE, token=token):
            mine += batch
        got[token] = mine

    threads = [threading.Thread(target=claimer, args=(f"worker-{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    claimed = [c.webhook_id for batch in got.values() for c in batch]
    assert sorted(claimed) == sorted(ids)  # every row once, none twice
    assert all(c.secrets and c.secrets[0].startswith("whsec_") for batch in got.values() for c in batch)
    # Leased: nobody gets them again until the lease ran out; then they are due for anyone.
    assert outbox.claim(engine, now=now + LEASE / 2, limit=100, lease=LEASE, token="late") == []
    again = outbox.claim(engine, now=now + LEASE + timedelta(seconds=1), limit=100, lease=LEASE, token="late")
    assert {c.webhook_id for c in again} == ids


def _claim_one(engine: Engine, now: datetime, token: str = "t") -> Claimed:
    [claimed] = outbox.claim(engine, now=now, limit=1, lease=LEASE, token=token)
    return claimed


def test_failures_follow_the_schedule_then_fail(engine: Engine, make_account: AccountFactory) -> None:
    account_id = _account(make_account, engine)
    now = datetime.now(UTC)
    webhook_id = _enqueue(engine, account_id, now)
    for attempt in range(1, len(SCHEDULE) + 1):
        claimed = _claim_one(engine, now)
        result = Result(started_at=now, duration_ms=3, status=500, error="HTTP 500")
        state = outbox.record_attempt(engine, claimed, result, token="t", now=now)
        row = _row(engine, webhook_id)
        assert row.attempts == attempt  # type: ignore[attr-defined]
        if attempt < len(SCHEDULE):
            assert state == outbox.PENDING
            wait = row.next_attempt_at - now  # type: ignore[attr-defined]
            assert SCHEDULE[attempt] * (1 - JITTER) <= wait <= SCHEDULE[attempt] * (1 + JITTER)
            now = row.next_attempt_at  # type: ignore[attr-defined]
        else:
            assert state == outbox.FAILED and row.next_attempt_at is None  # type: ignore[attr-defined]
    delivery, attempts = outbox.get_delivery(engine, webhook_id)
    assert delivery.state == outbox.FAILED and [a.attempt for a in attempts] == list(range(1, 11))
    assert all(a.status == 500 and a.error == "HTTP 500" for a in attempts)
    # An operator's retry: due at once, a fresh schedule, the same webhook-id.
    retried = outbox.retry(engine, webhook_id, now)
    assert (retried.state, retried.attempts, retried.webhook_id) == (outbox.PENDING, 0, webhook_id)
    claimed = _claim_one(engine, now)
    state = outbox.record_attempt(
        engine, claimed, Result(started_at=now, duration_ms=1, status=200), token="t", now=now
    )
    assert state == outbox.DELIVERED
    assert len(outbox.get_delivery(engine, webhook_id)[1]) == 11


def test_a_410_turns_the_accounts_callbacks_off_until_enabled(engine: Engine, make_account: AccountFactory) -> None:
    account_id = _account(make_account, engine)
    other_account = _account(make_account, engine)
    now = datetime.now(UTC)
    first, waiting = _enqueue(engine, account_id, now), _enqueue(engine, account_id, now + timedelta(hours=1))
    elsewhere = _enqueue(engine, other_account, now)
    claimed = next(c for c in outbox.claim(engine, now=now, limit=5, lease=LEASE, token="t") if c.webhook_id == first)
    state = outbox.record_attempt(
        engine, claimed, Result(started_at=now, duration_ms=1, status=410), token="t", now=now
    )
    assert state == outbox.FAILED
    hooks = keys.show(engine, account_id, now)
    assert hooks.disabled and "410" in (hooks.disabled_reason or "")
    assert _row(engine, waiting).state == outbox.UNSENT  # type: ignore[attr-defined]
    assert _row(engine, elsewhere).state == outbox.PENDING  # type: ignore[attr-defined]  # another account's
    later = _enqueue(engine, account_id, now)  # a new event while they are off: recorded, not sent
    assert _row(engine, later).state == outbox.UNSENT  # type: ignore[attr-defined]
    assert "off since" in (_row(engine, later).last_error or "")  # type: ignore[attr-defined]
    with pytest.raises(outbox.WebhookError, match="webhooks enable"):
        outbox.retry(engine, later, now)
    assert keys.enable(engine, account_id, now) and not keys.enable(engine, account_id, now)
    assert outbox.retry(engine, later, now).state == outbox.PENDING


def test_rotation_signs_with_both_secrets_during_the_grace(engine: Engine, make_account: AccountFactory) -> None:
    account_id = _account(make_account, engine)
    now = datetime.now(UTC)
    old = keys.show(engine, account_id, now).secret
    assert old.startswith("whsec_") and len(Webhook(old)._whsecret) == 32
    assert keys.show(engine, account_id, now).secret == old  # made once
    rotated = keys.rotate(engine, account_id, now, timedelta(hours=24))
    new = rotated.secret
    assert new != old and rotated.previous_secret == old
    assert old not in repr(rotated) and new not in repr(rotated)
    payload = outbox.event_body("job.completed", b'{"id": "\\u00e9t\\u00e9"}', now)
    timestamp = int(now.timestamp())
    during = signing.headers("msg_x", timestamp, payload, rotated.signing_secrets(now))
    assert len(during["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(payload, during)  # either receiver accepts
    after = signing.headers("msg_x", timestamp, payload, rotated.signing_secrets(now + timedelta(hours=25)))
    Webhook(new).verify(payload, after)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(payload, after)
    # The signature covers the exact bytes: one changed byte fails.
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(payload.replace(b"job", b"jab"), during)


def test_a_lost_lease_records_the_attempt_but_not_the_outcome(engine: Engine, make_account: AccountFactory) -> None:
    account_id = _account(make_account, engine)
    now = datetime.now(UTC)
    webhook_id = _enqueue(engine, account_id, now)
    slow = _claim_one(engine, now, token="slow")
    later = now + LEASE + timedelta(seconds=1)
    fresh = _claim_one(engine, later, token="fresh")
    outbox.record_attempt(engine, slow, Result(started_at=now, duration_ms=1, status=500), token="slow", now=later)
    row = _row(engine, webhook_id)
    assert row.lease_token == "fresh" and row.attempts == 0  # type: ignore[attr-defined]
    with engine.connect() as conn:
        assert conn.execute(select(webhook_attempts.c.status)).scalars().all() == [500]
    outbox.record_attempt(engine, fresh, Result(started_at=later, duration_ms=1, status=204), token="fresh", now=later)
    assert _row(engine, webhook_id).state == outbox.DELIVERED  # type: ignore[attr-defined]


def test_releasing_a_lease_makes_the_row_due_at_once(engine: Engine, make_account: AccountFactory) -> None:
    account_id = _account(make_account, engine)
    now = datetime.now(UTC)
    _enqueue(engine, account_id, now)
    claimed = _claim_one(engine, now, token="stopping")
    outbox.release(engine, [claimed], "stopping")
    assert _claim_one(engine, now, token="next").webhook_id == claimed.webhook_id
    with write_transaction(engine) as conn:  # a release by someone else's token changes nothing
        conn.execute(update(webhook_deliveries).values(lease_token="next"))
    outbox.release(engine, [claimed], "stopping")
    assert _row(engine, claimed.webhook_id).lease_token == "next"  # type: ignore[attr-defined]
