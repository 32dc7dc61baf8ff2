"""Webhooks end to end: a real server delivers outbox rows to a real receiver that verifies with ``standardwebhooks``.

Rows are enqueued as the jobs engine will (``outbox.enqueue`` in a transaction of
its own database); the receiver on 127.0.0.1 answers from a script. The retry
schedule is scaled down (``webhook_retry_scale``) so the specification's waits
take milliseconds; waiting is bounded by count of polls, and nothing asserts a
duration beyond the floors the schedule and Retry-After promise.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from numlookup.accounts import get_account
from numlookup.store.engine import write_transaction
from numlookup.store.tables import webhook_attempts, webhook_deliveries
from numlookup.webhooks import keys, outbox
from numlookup.webhooks.guard import UnsafeUrl, check_url
from tests.e2e.conftest import Live, start_live
from tests.peers.webhook_receiver import Receiver
from tests.support import Server, cli_json, run_cli, wait_for

FAST = {
    "NUMLOOKUP_WEBHOOK_ALLOW_PRIVATE": "true",  # the receiver is on 127.0.0.1
    "NUMLOOKUP_WEBHOOK_RETRY_SCALE": "0.001",  # 5 s → 5 ms, 5 min → 0.3 s, 30 min → 1.8 s, 2 h → 7.2 s
    "NUMLOOKUP_WEBHOOK_POLL_SECONDS": "0.05",
}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    yield from start_live(tmp_path_factory.mktemp("webhooks"), env=FAST)


def enqueue(
    engine: Engine, account_id: int, url: str, data: bytes = b'{"job_id": "job_1", "status": "COMPLETED"}'
) -> str:
    with write_transaction(engine) as conn:
        return outbox.enqueue(
            conn, account_id=account_id, url=url, event_type="job.completed", payload=data, now=datetime.now(UTC)
        )


def row(engine: Engine, webhook_id: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(webhook_deliveries).where(webhook_deliveries.c.webhook_id == webhook_id)).one()


def attempts(engine: Engine, webhook_id: str) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(webhook_attempts)
                .join(webhook_deliveries, webhook_deliveries.c.id == webhook_attempts.c.delivery_id)
                .where(webhook_deliveries.c.webhook_id == webhook_id)
                .order_by(webhook_attempts.c.attempt)
            )
        )


def state_is(engine: Engine, webhook_id: str, *states: str) -> Callable[[], bool]:
    return lambda: row(engine, webhook_id).state in states


def test_failures_are_retried_with_one_id_until_one_delivery_succeeds(live: Live) -> None:
    creds = live.account()
    account = get_account(live.engine, creds.name)
    secret = cli_json(live.server.data_dir, "accounts", "webhook-secret", creds.name)["secret"]
    assert secret.startswith("whsec_")
    with Receiver(secrets=[secret], script=["500", "reset", "redirect"]) as receiver:
        webhook_id = enqueue(live.engine, account.id, receiver.url())
        wait_for("the delivery", state_is(live.engine, webhook_id, outbox.DELIVERED, outbox.FAILED))
        delivered = row(live.engine, webhook_id)
        tried = attempts(live.engine, webhook_id)
    assert delivered.state == outbox.DELIVERED and delivered.attempts == 4
    assert [r.answer for r in receiver.requests] == ["500", "reset", "redirect", "ok"]
    assert len(receiver.accepted()) == 1  # delivered exactly once to success
    assert {r.webhook_id for r in receiver.requests} == {webhook_id}  # the same id on every attempt
    assert all(r.verified == {secret: True} for r in receiver.requests)  # the official library verifies each
    assert all(r.body == bytes(delivered.payload) for r in receiver.requests)  # the exact bytes stored
    assert receiver.trapped == []  # the redirect was not followed
    # Each attempt has its own timestamp, the attempt's own time.
    stamps = [int(r.headers["webhook-timestamp"]) for r in receiver.requests]
    assert stamps == sorted(stamps) and stamps[-1] > stamps[0]
    for stamp, attempt in zip(stamps, tried, strict=True):
        assert int(attempt.started_at.timestamp()) <= stamp <= int(attempt.started_at.timestamp()) + 1
    assert [a.status for a in tried] == [500, None, 302, 204]
    assert tried[1].error and tried[2].error and "not followed" in tried[2].error
    assert receiver.requests[0].headers["content-type"] == "application/json"
    # The operator's view.
    [listed] = cli_json(live.server.data_dir, "webhooks", "list", "--account", creds.name)
    assert (listed["webhook_id"], listed["state"], listed["attempts"]) == (webhook_id, "delivered", 4)
    shown = cli_json(live.server.data_dir, "webhooks", "show", webhook_id)
    assert [a["status"] for a in shown["attempt_log"]] == [500, None, 302, 204]
    assert secret not in str(shown)


def test_a_410_turns_the_accounts_callbacks_off_and_enable_turns_them_on(live: Live) -> None:
    creds = live.account()
    account = get_account(live.engine, creds.name)
    data_dir = live.server.data_dir
    with Receiver(script=["410"]) as receiver:
        gone = enqueue(live.engine, account.id, receiver.url())
        wait_for("the 410", state_is(live.engine, gone, outbox.FAILED))
        shown = cli_json(data_dir, "accounts", "webhook-secret", creds.name)
        assert shown["callbacks_enabled"] is False and "410" in shown["disabled_reason"]
        later = enqueue(live.engine, account.id, receiver.url())
        assert row(live.engine, later).state == outbox.UNSENT  # recorded, not sent
        failed = {d["webhook_id"]: d["state"] for d in cli_json(data_dir, "webhooks", "list", "--failed")}
        assert failed[gone] == "failed" and failed[later] == "unsent"
        refused = run_cli(data_dir, "webhooks", "retry", later, check=False)
        assert refused.returncode == 1 and f"webhooks enable {creds.name}" in refused.stderr
        assert len(receiver.requests) == 1
        assert cli_json(data_dir, "webhooks", "enable", creds.name)["changed"] is True
        run_cli(data_dir, "webhooks", "retry", later)
        wait_for("the retry", state_is(live.engine, later, outbox.DELIVERED))
    assert [r.webhook_id for r in receiver.requests] == [gone, later]


def test_retry_after_is_honoured(live: Live) -> None:
    creds = live.account()
    account = get_account(live.engine, creds.name)
    with Receiver(script=["429:2"]) as receiver:
        webhook_id = enqueue(live.engine, account.id, receiver.url())
        wait_for("the delivery", state_is(live.engine, webhook_id, outbox.DELIVERED))
    first, second = attempts(live.engine, webhook_id)
    assert first.status == 429 and second.status == 204
    # The schedule alone would have waited 5 ms; the receiver asked for 2 s.
    assert second.started_at - first.started_at >= timedelta(seconds=2)


def test_during_a_rotation_either_secret_verifies(live: Live) -> None:
    creds = live.account()
    account = get_account(live.engine, creds.name)
    data_dir = live.server.data_dir
    old = cli_json(data_dir, "accounts", "webhook-secret", creds.name)["secret"]
    rotated = cli_json(data_dir, "accounts", "webhook-secret", creds.name, "--rotate")
    new = rotated["secret"]
    assert new != old and rotated["previous_secret_valid_until"] is not None
    assert cli_json(data_dir, "accounts", "webhook-secret", creds.name)["secret"] == new
    with Receiver(secrets=[old]) as old_side, Receiver(secrets=[new]) as new_side:
        ids = [enqueue(live.engine, account.id, old_side.url()), enqueue(live.engine, account.id, new_side.url())]
        for webhook_id in ids:
            wait_for("the delivery", state_is(live.engine, webhook_id, outbox.DELIVERED, outbox.FAILED))
    assert [r.verified for r in old_side.requests] == [{old: True}]
    assert [r.verified for r in new_side.requests] == [{new: True}]
    assert len(new_side.requests[0].headers["webhook-signature"].split(" ")) == 2
    # Without a grace, the old secret stops at once.
    cli_json(
        data_dir,
        "accounts",
        "webhook-secret",
        creds.name,
        "--rotate",
        env={"NUMLOOKUP_WEBHOOK_ROTATION_GRACE_HOURS": "0"},
    )
    newest = keys.show(live.engine, account.id, datetime.now(UTC))
    assert newest.secret not in (old, new) and newest.signing_secrets(datetime.now(UTC)) == [newest.secret]


def test_a_restart_between_attempts_loses_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "restart"
    gen = start_live(data_dir, env=FAST)
    live = next(gen)
    try:
        account = get_account(live.engine, live.account().name)
        with Receiver(then="500") as receiver:
            webhook_id = enqueue(live.engine, account.id, receiver.url())
            wait_for("a failed attempt", lambda: row(live.engine, webhook_id).attempts >= 1)
            live.server.stop()
            assert row(live.engine, webhook_id).state == outbox.PENDING  # the row survived the stop
            seen = len(receiver.requests)
            receiver.then = "ok"
            second = Server(data_dir, env=FAST).start()
            try:
                wait_for("the delivery by the new process", state_is(live.engine, webhook_id, outbox.DELIVERED))
            finally:
                second.stop()
        assert len(receiver.requests) == seen + 1 and receiver.requests[-1].answer == "ok"
        assert {r.webhook_id for r in receiver.requests} == {webhook_id}
    finally:
        gen.close()


def test_a_claim_that_dies_is_claimed_again_after_its_lease(tmp_path: Path) -> None:
    env = {**FAST, "NUMLOOKUP_WEBHOOK_TIMEOUT_SECONDS": "2", "NUMLOOKUP_WEBHOOK_LEASE_SECONDS": "3"}
    data_dir = tmp_path / "crash"
    gen = start_live(data_dir, env=env)
    live = next(gen)
    try:
        account = get_account(live.engine, live.account().name)
        with Receiver(script=["hold"]) as receiver:
            webhook_id = enqueue(live.engine, account.id, receiver.url())
            assert receiver.held.wait(60)
            live.server.kill()  # mid-attempt: no outcome recorded, the lease stays
            receiver.release.set()
            crashed = row(live.engine, webhook_id)
            assert crashed.state == outbox.PENDING and crashed.lease_until is not None and crashed.attempts == 0
            second = Server(data_dir, env=env).start()
            try:
                wait_for("the delivery after the lease", state_is(live.engine, webhook_id, outbox.DELIVERED))
            finally:
                second.stop()
        # At least once: the receiver saw the id twice and deduplicates on it.
        assert [r.webhook_id for r in receiver.requests] == [webhook_id, webhook_id]
        assert row(live.engine, webhook_id).attempts == 1
    finally:
        gen.close()


def test_two_nodes_deliver_each_row_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "nodes"
    gen = start_live(data_dir, env=FAST)
    live = next(gen)
    other = Server(data_dir, env=FAST).start()
    try:
        account = get_account(live.engine, live.account().name)
        with Receiver() as receiver:
            ids = [enqueue(live.engine, account.id, receiver.url()) for _ in range(40)]
            for webhook_id in ids:
                wait_for("every delivery", state_is(live.engine, webhook_id, outbox.DELIVERED))
        assert Counter(r.webhook_id for r in receiver.requests) == Counter(ids)  # each once, none twice
    finally:
        other.stop()
        gen.close()


def test_private_addresses_are_refused_at_submit_and_at_delivery(tmp_path: Path) -> None:
    """With webhook_allow_private false, localhost is refused; the receiver on it never hears a thing."""
    gen = start_live(tmp_path / "guarded", env={**FAST, "NUMLOOKUP_WEBHOOK_ALLOW_PRIVATE": "false"})
    live = next(gen)
    try:
        account = get_account(live.engine, live.account().name)
        with Receiver() as receiver:
            url = receiver.url(host="localhost")
            with pytest.raises(UnsafeUrl, match="loopback"):
                check_url(url, allow_private=False)  # what the jobs route runs at submit
            webhook_id = enqueue(live.engine, account.id, url)  # as if DNS had changed since the submit
            wait_for("a refused attempt", lambda: row(live.engine, webhook_id).attempts >= 1)
            refused = row(live.engine, webhook_id)
            assert refused.last_error.startswith("refused:") and "loopback" in refused.last_error
            assert refused.state == outbox.PENDING  # retried on schedule: DNS may change back
        assert receiver.requests == []
    finally:
        gen.close()
