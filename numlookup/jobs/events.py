"""The event a job's end sends to its ``callback_url``: built here, delivered by whoever is wired to ``notify``.

Delivery (an outbox, Standard Webhooks signatures, retries) is not this
package's: ``notify`` is called inside the transaction that ends the job, so
the event is durable exactly when the job's final state is, and the outbox
delivers it afterwards. With nothing wired, a job's end records no event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

import msgspec
from sqlalchemy import Connection

from numlookup.jobs.model import JobEvent, JobRecord, job_object
from numlookup.results import iso_time

EVENT_TYPES = {"COMPLETED": "job.completed", "FAILED": "job.failed", "STOPPED": "job.stopped"}


class Notify(Protocol):
    """``webhooks.outbox.enqueue``'s shape: stores the event for delivery, returns its webhook id."""

    def __call__(
        self, conn: Connection, *, account_id: int, url: str, event_type: str, payload: bytes, now: datetime
    ) -> str: ...


notify: Notify | None = None


def payload(job: JobRecord, now: datetime) -> bytes:
    """``{"type": "job.completed" | "job.failed" | "job.stopped", "timestamp": …, "data": <the job object>}``."""
    return msgspec.json.encode(JobEvent(type=EVENT_TYPES[job.status], timestamp=iso_time(now), data=job_object(job)))


def job_ended(conn: Connection, job: JobRecord, now: datetime) -> str | None:
    """Inside the transaction that ended ``job``: hand its event to ``notify``; the webhook id, or None if not sent."""
    if job.callback_url is None or notify is None:
        return None
    return notify(
        conn,
        account_id=job.account_id,
        url=job.callback_url,
        event_type=EVENT_TYPES[job.status],
        payload=payload(job, now),
        now=now,
    )
