"""The event a job's end sends to its ``callback_url``, handed to the webhook outbox in the transaction that ends it.

Delivery (Standard Webhooks signatures, retries, 410) is ``webhooks``'s: the
event is a row of its outbox, inserted inside the transaction that ends the
job, so the event is durable exactly when the job's final state is, and any
serve worker delivers it afterwards. The body is the job object as the API
renders it, so a receiver needs no second call to learn the outcome.
"""

from __future__ import annotations

from datetime import datetime

import msgspec
from sqlalchemy import Connection

from numlookup.jobs.model import JobEvent, JobRecord, job_object
from numlookup.results import iso_time
from numlookup.webhooks import outbox

EVENT_TYPES = {"COMPLETED": "job.completed", "FAILED": "job.failed", "STOPPED": "job.stopped"}


def payload(job: JobRecord, now: datetime) -> bytes:
    """``{"type": "job.completed" | "job.failed" | "job.stopped", "timestamp": …, "data": <the job object>}``."""
    return msgspec.json.encode(JobEvent(type=EVENT_TYPES[job.status], timestamp=iso_time(now), data=job_object(job)))


def job_ended(conn: Connection, job: JobRecord, now: datetime) -> str | None:
    """Inside the transaction that ended ``job``: queue its event; the webhook id, or None without a callback_url."""
    if job.callback_url is None:
        return None
    return outbox.enqueue(
        conn,
        account_id=job.account_id,
        url=job.callback_url,
        event_type=EVENT_TYPES[job.status],
        payload=payload(job, now),
        now=now,
    )
