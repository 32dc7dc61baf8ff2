"""What a job is: its statuses, its database row as a value, and its wire object.

The wire object follows Twilio's job model with our field names (the issue's):
counts, the credits reserved and charged as exact decimal strings, where its
results are and until when. The API, the CLI's ``--json`` and the webhook event
all show this one Struct, so they cannot disagree.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from numlookup.billing.money import format_amount
from numlookup.results import iso_time
from numlookup.status import StatusStyle, status_style

Status = Literal["QUEUED", "IN_PROGRESS", "COMPLETED", "FAILED", "STOP_REQUESTED", "STOPPED"]
STATUSES: tuple[Status, ...] = ("QUEUED", "IN_PROGRESS", "COMPLETED", "FAILED", "STOP_REQUESTED", "STOPPED")
# An upload still being read: the job exists only for the request that is sending it.
RECEIVING = "RECEIVING"
# Chunks are claimed only from these; a chunk already claimed may still be charged under STOP_REQUESTED.
ACTIVE = ("QUEUED", "IN_PROGRESS")
SETTLEABLE = ("QUEUED", "IN_PROGRESS", "STOP_REQUESTED")
FINISHED = ("COMPLETED", "FAILED", "STOPPED")
ID_PREFIX = "job_"


def new_job_id() -> str:
    """``job_`` and 96 random bits in hex: unguessable, though an id is only ever served to its own account."""
    return ID_PREFIX + secrets.token_hex(12)


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A row of ``jobs``. Money in micro-credits."""

    id: int
    public_id: str
    account_id: int
    status: str
    friendly_name: str | None
    callback_url: str | None
    max_age: float | None
    style: StatusStyle
    price_offline: int
    price_cache: int
    price_live: int
    total_count: int
    processed_count: int
    valid_count: int
    invalid_count: int
    duplicate_count: int
    reserved: int
    charged: int
    chunks_total: int
    chunks_done: int
    error: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    expires_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> JobRecord:
        values = {name: getattr(row, name) for name in cls.__slots__}
        values["style"] = status_style(row.style)
        return cls(**values)


class JobResult(msgspec.Struct):
    """Where the results are: ``url`` is relative to the API's base URL; ``expires_at`` is set once the job ends."""

    url: str
    expires_at: str | None


class JobObject(msgspec.Struct):
    id: str
    status: str
    friendly_name: str | None
    created_at: str
    updated_at: str
    started_at: str | None
    completed_at: str | None
    total_count: int
    processed_count: int
    valid_count: int
    invalid_count: int
    duplicate_count: int
    reserved: str
    charged: str
    callback_url: str | None
    result: JobResult
    error: str | None


class JobList(msgspec.Struct):
    """A page of jobs, newest first; ``next_cursor`` is passed as ``cursor`` for the next page (null: the last)."""

    jobs: list[JobObject]
    next_cursor: str | None


MAX_FRIENDLY_NAME = 200
MAX_CALLBACK_URL = 2000
# One pattern for the check and for the OpenAPI document, so the two cannot disagree:
# http or https, a host name or IPv4 address, a port up to 65535, then printable ASCII.
# No credentials (they would show in every job object), no IPv6 literal.
CALLBACK_URL_PATTERN = (
    r"^https?://[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*"
    r"(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?"
    r"([/?#][!-~]*)?$"
)
FRIENDLY_NAME_PATTERN = r"^[^\x00-\x1f\x7f]*$"  # no control characters (PostgreSQL refuses a NUL in text)
CallbackUrl = Annotated[str, msgspec.Meta(max_length=MAX_CALLBACK_URL, pattern=CALLBACK_URL_PATTERN)]
FriendlyName = Annotated[str, msgspec.Meta(max_length=MAX_FRIENDLY_NAME, pattern=FRIENDLY_NAME_PATTERN)]


class JobSubmission(msgspec.Struct):
    """``POST /v1/hlr/jobs`` as JSON. Unknown keys are ignored, as for the sync call."""

    numbers: list[str]
    callback_url: CallbackUrl | None = None
    max_age: Annotated[float, msgspec.Meta(ge=0)] | None = None
    friendly_name: FriendlyName | None = None


class JobEvent(msgspec.Struct):
    """The webhook payload of a job's end (Standard Webhooks' recommended shape)."""

    type: str
    timestamp: str
    data: JobObject


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else iso_time(moment)


def results_path(public_id: str) -> str:
    return f"/v1/hlr/jobs/{public_id}/results"


def job_object(job: JobRecord) -> JobObject:
    return JobObject(
        id=job.public_id,
        status=job.status,
        friendly_name=job.friendly_name,
        created_at=iso_time(job.created_at),
        updated_at=iso_time(job.updated_at),
        started_at=_time(job.started_at),
        completed_at=_time(job.completed_at),
        total_count=job.total_count,
        processed_count=job.processed_count,
        valid_count=job.valid_count,
        invalid_count=job.invalid_count,
        duplicate_count=job.duplicate_count,
        reserved=format_amount(job.reserved),
        charged=format_amount(job.charged),
        callback_url=job.callback_url,
        result=JobResult(url=results_path(job.public_id), expires_at=_time(job.expires_at)),
        error=job.error,
    )
