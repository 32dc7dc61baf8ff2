"""A job's end puts its event in the webhook outbox inside the transaction that ends it, in the documented shape."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import Engine, select

from numlookup.jobs import events, queue
from numlookup.jobs.intake import JobOptions
from numlookup.jobs.model import job_object
from numlookup.store.engine import write_transaction
from numlookup.store.tables import webhook_deliveries
from tests.conftest import AccountFactory
from tests.jobs.local import settings_for, submit, work
from tests.support import database_url

HOOK = "https://example.com/hooks/numlookup"


@dataclass
class Sent:
    account_id: int
    url: str
    event_type: str
    payload: bytes
    state: str
    webhook_id: str


def outbox_rows(engine: Engine) -> list[Sent]:
    """The webhook outbox's rows, oldest first: what the delivery worker will send."""
    with engine.connect() as conn:
        rows = conn.execute(select(webhook_deliveries).order_by(webhook_deliveries.c.id)).all()
    return [Sent(r.account_id, r.url, r.event_type, bytes(r.payload), r.state, r.webhook_id) for r in rows]


def test_a_completed_job_sends_one_event_with_the_job_object(
    data_dir: Path, engine: Engine, make_account: AccountFactory
) -> None:
    settings = settings_for(data_dir, database_url(data_dir), job_chunk_numbers=2)
    name = make_account(credits="1").name
    job = submit(engine, settings, name, ["+37251000001", "+37251000002", "nope"], JobOptions(callback_url=HOOK))
    assert outbox_rows(engine) == []  # queued: nothing to say yet
    assert work(engine, settings, chunks=1) == 1
    assert outbox_rows(engine) == []  # half done: still nothing
    assert work(engine, settings) == 1
    done = queue.get(engine, job.public_id)
    assert done is not None and done.status == "COMPLETED"
    [sent] = outbox_rows(engine)
    assert (sent.account_id, sent.url, sent.event_type) == (done.account_id, HOOK, "job.completed")
    assert sent.state == "pending" and sent.webhook_id.startswith("msg_")  # due at once, for any worker to send
    body = msgspec.json.decode(sent.payload)
    assert set(body) == {"type", "timestamp", "data"}
    assert body["type"] == "job.completed"
    assert body["data"] == msgspec.to_builtins(job_object(done))
    assert body["data"]["charged"] == "0.02" and body["data"]["reserved"] == "0"
    assert body["timestamp"] == body["data"]["completed_at"]  # the moment the job ended


def test_a_stopped_and_a_failed_job_send_theirs(data_dir: Path, engine: Engine, make_account: AccountFactory) -> None:
    settings = settings_for(data_dir, database_url(data_dir), job_chunk_numbers=1)
    name = make_account(credits="1").name
    stopped = submit(engine, settings, name, ["+37251000001", "+37251000002"], JobOptions(callback_url=HOOK))
    failed = submit(engine, settings, name, ["+37251000003"], JobOptions(callback_url=HOOK))
    quiet = submit(engine, settings, name, ["+37251000004"])  # no callback_url: no event
    queue.stop(engine, stopped.public_id, None, timedelta(days=1))
    queue.fail(engine, failed.id, "a test says so", timedelta(days=1))
    queue.stop(engine, quiet.public_id, None, timedelta(days=1))
    sent = outbox_rows(engine)
    assert [(s.event_type, msgspec.json.decode(s.payload)["data"]["id"]) for s in sent] == [
        ("job.stopped", stopped.public_id),
        ("job.failed", failed.public_id),
    ]
    assert msgspec.json.decode(sent[1].payload)["data"]["error"] == "a test says so"
    assert msgspec.json.decode(sent[0].payload)["data"]["status"] == "STOPPED"


def test_the_event_commits_with_the_end_of_the_job_or_not_at_all(
    data_dir: Path, engine: Engine, make_account: AccountFactory
) -> None:
    """A transaction that ends a job and then fails leaves neither the end nor its event."""
    settings = settings_for(data_dir, database_url(data_dir))
    name = make_account(credits="1").name
    job = submit(engine, settings, name, ["+37251000001"], JobOptions(callback_url=HOOK))
    with pytest.raises(RuntimeError), write_transaction(engine) as conn:
        events.job_ended(conn, replace(job, status="COMPLETED"), datetime.now(UTC))
        raise RuntimeError("the job's end did not commit")
    assert outbox_rows(engine) == []
    shape = msgspec.json.decode(events.payload(replace(job, status="STOPPED"), datetime.now(UTC)))
    assert set(shape) == {"type", "timestamp", "data"} and shape["data"]["callback_url"] == HOOK
