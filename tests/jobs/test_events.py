"""A job's end hands its event to ``events.notify`` inside the transaction that ends it, in the documented shape."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from sqlalchemy import Connection, Engine, select

from numlookup.jobs import events, queue
from numlookup.jobs.intake import JobOptions
from numlookup.jobs.model import job_object
from numlookup.store.tables import jobs
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
    status_in_transaction: str


@pytest.fixture
def outbox() -> Iterator[list[Sent]]:
    """A notifier that records what it is handed, and the job's status as its own transaction sees it."""
    sent: list[Sent] = []

    def enqueue(conn: Connection, *, account_id: int, url: str, event_type: str, payload: bytes, now: datetime) -> str:
        assert conn.in_transaction()
        job_id = msgspec.json.decode(payload)["data"]["id"]
        status = conn.execute(select(jobs.c.status).where(jobs.c.public_id == job_id)).scalar_one()
        sent.append(Sent(account_id, url, event_type, payload, status))
        return f"msg_{len(sent)}"

    events.notify = enqueue
    yield sent
    events.notify = None


def test_a_completed_job_sends_one_event_with_the_job_object(
    data_dir: Path, engine: Engine, make_account: AccountFactory, outbox: list[Sent]
) -> None:
    settings = settings_for(data_dir, database_url(data_dir), job_chunk_numbers=2)
    name = make_account(credits="1").name
    job = submit(engine, settings, name, ["+37251000001", "+37251000002", "nope"], JobOptions(callback_url=HOOK))
    assert outbox == []  # queued: nothing to say yet
    assert work(engine, settings) == 2
    done = queue.get(engine, job.public_id)
    assert done is not None and done.status == "COMPLETED"
    [sent] = outbox
    assert (sent.account_id, sent.url, sent.event_type) == (done.account_id, HOOK, "job.completed")
    assert sent.status_in_transaction == "COMPLETED"  # the event is durable exactly when the job's end is
    body = msgspec.json.decode(sent.payload)
    assert set(body) == {"type", "timestamp", "data"}
    assert body["type"] == "job.completed"
    assert body["data"] == msgspec.to_builtins(job_object(done))
    assert body["data"]["charged"] == "0.02" and body["data"]["reserved"] == "0"
    assert body["timestamp"] == body["data"]["completed_at"]  # the moment the job ended


def test_a_stopped_and_a_failed_job_send_theirs(
    data_dir: Path, engine: Engine, make_account: AccountFactory, outbox: list[Sent]
) -> None:
    settings = settings_for(data_dir, database_url(data_dir), job_chunk_numbers=1)
    name = make_account(credits="1").name
    stopped = submit(engine, settings, name, ["+37251000001", "+37251000002"], JobOptions(callback_url=HOOK))
    failed = submit(engine, settings, name, ["+37251000003"], JobOptions(callback_url=HOOK))
    quiet = submit(engine, settings, name, ["+37251000004"])  # no callback_url: no event
    queue.stop(engine, stopped.public_id, None, timedelta(days=1))
    queue.fail(engine, failed.id, "a test says so", timedelta(days=1))
    queue.stop(engine, quiet.public_id, None, timedelta(days=1))
    assert [(s.event_type, s.status_in_transaction) for s in outbox] == [
        ("job.stopped", "STOPPED"),
        ("job.failed", "FAILED"),
    ]
    assert msgspec.json.decode(outbox[1].payload)["data"]["error"] == "a test says so"


def test_without_a_notifier_a_job_still_ends(data_dir: Path, engine: Engine, make_account: AccountFactory) -> None:
    settings = settings_for(data_dir, database_url(data_dir))
    name = make_account(credits="1").name
    job = submit(engine, settings, name, ["+37251000001"], JobOptions(callback_url=HOOK))
    assert events.notify is None
    work(engine, settings)
    done = queue.get(engine, job.public_id)
    assert done is not None and done.status == "COMPLETED"
    shape = msgspec.json.decode(events.payload(done, done.completed_at or done.updated_at))
    assert shape["type"] == "job.completed" and shape["data"]["callback_url"] == HOOK
