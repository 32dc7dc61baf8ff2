"""The bulk job routes, under the sync API's Basic auth and allow-list: submit, list, show, results, stop.

A job exists only for its account: every lookup by id is filtered by the
authenticated account, so another account's job answers the same 404 as an id
that never existed. ``submit_job`` takes an Idempotency-Key as ``POST
/v1/hlr/sync`` does (``api.idempotency``); the work of reading, resolving and reserving is ``jobs.intake``'s,
the rest ``jobs.queue``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

import anyio.to_thread
import msgspec
from sqlalchemy import Connection
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from numlookup.accounts import Account
from numlookup.api.errors import (
    body_too_large,
    invalid_parameters,
    job_ended,
    job_not_found,
    too_many_job_numbers,
)
from numlookup.api.idempotency import Claim
from numlookup.api.lookup import _authenticate, _no_credits
from numlookup.api.nesting import MAX_NESTING, nesting_depth_exceeds
from numlookup.api.state import AppState
from numlookup.billing import InsufficientCredits
from numlookup.jobs import queue, render
from numlookup.jobs.cpu import Cpu, Lines, stage_lines, stage_numbers
from numlookup.jobs.intake import (
    MAX_INPUT_CHARS,
    JobOptions,
    JobTerms,
    LineReader,
    Stager,
    TooManyNumbers,
    UploadError,
    check_callback_url,
    check_friendly_name,
)
from numlookup.jobs.model import JobList, JobRecord, JobSubmission, job_object
from numlookup.settings import Settings
from numlookup.status import answer_style
from numlookup.webhooks.guard import UnsafeUrl, check_url

log = logging.getLogger("numlookup.api")

FILE_TYPES = ("text/csv", "text/plain")
FILE_OPTIONS = ("column", "header", "callback_url", "max_age", "friendly_name")  # a file's query parameters
READ_BYTES = 1 << 20  # the upload goes to the intake a megabyte at a time
DEFAULT_PAGE, MAX_PAGE = 20, 100
JSON = "application/json"
ROUTE = "POST /v1/hlr/jobs"  # what an idempotency key's fingerprint names besides the body
_encoder = msgspec.json.Encoder()
_submission = msgspec.json.Decoder(JobSubmission)


def _json(body: msgspec.Struct, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_encoder.encode(body), status_code=status, media_type="application/json", headers=headers)


def _media_type(request: Request) -> str:
    content_type = request.headers.get("content-type", "")
    media, _, parameters = content_type.partition(";")
    media = media.strip().lower()
    charset = next(
        (p.split("=", 1)[1].strip().strip('"').lower() for p in parameters.split(";") if "charset=" in p.lower()), None
    )
    if media not in ("application/json", *FILE_TYPES):
        shown = content_type or "none"
        raise invalid_parameters(f"Content-Type must be application/json, text/csv or text/plain (got {shown}).")
    if charset not in (None, "utf-8", "utf8"):
        raise invalid_parameters(f"The body must be UTF-8 (got charset {charset}).")
    return media


def job_options(friendly_name: str | None, callback_url: str | None, max_age: float | None) -> JobOptions:
    """A job's options, checked (400, code 102, naming what is wrong): the job API's and the console's upload's."""
    try:
        if callback_url is not None:
            check_callback_url(callback_url)
        if friendly_name is not None:
            check_friendly_name(friendly_name)
    except ValueError as exc:
        raise invalid_parameters(f"{exc}.") from None
    if max_age is not None and not max_age >= 0:
        raise invalid_parameters("max_age must be a number of seconds, 0 or more.")
    return JobOptions(friendly_name=friendly_name, callback_url=callback_url, max_age=max_age)


def _flag(params: QueryParams, name: str) -> bool:
    value = params.get(name, "false").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise invalid_parameters(f"{name} must be true or false (got {value!r}).")


def _file_options(params: QueryParams) -> tuple[JobOptions, LineReader]:
    column = None
    if "column" in params:
        text = params["column"].strip()
        if not text.isdigit():
            raise invalid_parameters(f"column must be a column number counted from 0 (got {text!r}).")
        column = int(text)
    max_age = None
    if "max_age" in params:
        try:
            max_age = float(params["max_age"])
        except ValueError:
            raise invalid_parameters("max_age must be a number of seconds, 0 or more.") from None
    options = job_options(params.get("friendly_name"), params.get("callback_url"), max_age)
    return options, LineReader(column, _flag(params, "header"))


async def _submission_body(request: Request, limit: int) -> tuple[bytes, JobSubmission]:
    """The body's bytes (an Idempotency-Key's fingerprint covers them) and what they say."""
    body = await request.body()  # bounded by the abuse guard (max_job_json_bytes)
    if len(body) > limit:
        raise body_too_large(limit)
    if not body.strip():
        raise invalid_parameters('The request body is missing; send {"numbers": ["+37251000001", ...]}.')
    if nesting_depth_exceeds(body):
        raise invalid_parameters(f"The request body nests arrays and objects more than {MAX_NESTING} levels deep.")
    try:
        submission = _submission.decode(body)
    except msgspec.ValidationError as exc:
        raise invalid_parameters(f"The request body is wrong: {exc}.") from None
    except msgspec.DecodeError as exc:
        raise invalid_parameters(f"The request body is not valid JSON: {exc}.") from None
    if not submission.numbers:
        raise invalid_parameters("`numbers` must hold at least one number.")
    long = next((i for i, n in enumerate(submission.numbers) if len(n) > MAX_INPUT_CHARS), None)
    if long is not None:
        raise invalid_parameters(f"`numbers[{long}]` is longer than {MAX_INPUT_CHARS} characters.")
    return body, submission


async def _stage(cpu: Cpu, stager: Stager, lines: Lines | None, chunk_numbers: int) -> None:
    if lines is not None:
        staged = await cpu.run(stage_lines, lines, chunk_numbers)
        await anyio.to_thread.run_sync(stager.add, staged)


async def _read_upload(
    blocks: AsyncIterator[bytes],
    reader: LineReader,
    stager: Stager,
    cpu: Cpu,
    settings: Settings,
    digest: hashlib._Hash,
) -> None:
    """Stream the file into the intake; about two ``READ_BYTES`` blocks of it (and their chunks) in memory at a time.

    The next block is read from the socket while the previous one is resolved
    and staged, in order: one block at most is waiting. ``digest`` takes every
    byte as it is read: an Idempotency-Key's fingerprint of a body never held whole.
    """
    limit, chunk_numbers = settings.max_job_bytes, settings.job_chunk_numbers
    buffer = bytearray()
    received = 0
    staging: asyncio.Task[None] | None = None

    async def then(lines: Lines | None) -> None:
        nonlocal staging
        if staging is not None:
            await staging
        staging = asyncio.create_task(_stage(cpu, stager, lines, chunk_numbers))

    try:
        async for block in blocks:
            received += len(block)
            if received > limit:
                raise body_too_large(limit)
            digest.update(block)
            buffer += block
            if len(buffer) >= READ_BYTES:
                data = bytes(buffer)
                buffer.clear()
                await then(reader.feed(data))
        await then(reader.feed(bytes(buffer)))
        await then(reader.finish())
        if staging is not None:
            await staging
    finally:
        if staging is not None and not staging.done():
            staging.cancel()
            with contextlib.suppress(BaseException):
                await staging


async def check_callback(settings: Settings, url: str | None) -> None:
    """400 (code 102) for a callback URL the webhook guard refuses: it resolves the host, so in a worker thread."""
    if url is None:
        return
    try:
        await anyio.to_thread.run_sync(partial(check_url, url, allow_private=settings.webhook_allow_private))
    except UnsafeUrl as exc:
        raise invalid_parameters(f"{exc}.") from None


def _file_head(media: str, request: Request) -> bytes:
    """What a file's Idempotency-Key fingerprint covers besides its bytes: its type, its query (the options)."""
    return b"\n".join([media.encode(), request.url.query.encode()])


@dataclass(frozen=True, slots=True)
class Upload:
    """A file to read into a job: its blocks as they arrive, how its lines are read, and what its key's print covers."""

    blocks: AsyncIterator[bytes]
    reader: LineReader
    head: bytes  # with the file's SHA-256, the Idempotency-Key fingerprint


async def submit_job(request: Request) -> Response:
    """``POST /v1/hlr/jobs``: 202 with the job once the whole body was read, resolved and its credits reserved.

    Idempotency-Key: a JSON body's key is claimed before anything is staged; a
    file's once its last byte was read and hashed (its fingerprint is known
    only then), before anything is reserved. Either way the 202 is stored in
    the transaction that reserves and queues the job, so a retry replays it
    (the same job) and reserves nothing twice; a replay, a 409 or a 422 found
    at the end of an upload discards what it staged.
    """
    state: AppState = request.app.state.numlookup
    settings = state.settings
    username, account = await _authenticate(request, state)
    media = _media_type(request)
    numbers: list[str] = []
    upload: Upload | None = None
    claim: Claim | None = None
    if media == "application/json":
        if given := [name for name in FILE_OPTIONS if name in request.query_params]:
            raise invalid_parameters(
                f"Query parameters {', '.join(given)} are for a file body; a JSON body carries its options itself."
            )
        raw, submission = await _submission_body(request, settings.max_job_json_bytes)
        if len(submission.numbers) > settings.max_job_numbers:
            raise too_many_job_numbers(settings.max_job_numbers)
        options = job_options(submission.friendly_name, submission.callback_url, submission.max_age)
        numbers = submission.numbers
        await check_callback(settings, options.callback_url)
        began = await state.idempotency.begin(request, account.id, ROUTE, media.encode() + b"\n" + raw)
        if isinstance(began, Response):
            return began  # the job this key already made: nothing is reserved again
        claim = began
    else:
        options, reader = _file_options(request.query_params)
        await check_callback(settings, options.callback_url)
        upload = Upload(request.stream(), reader, _file_head(media, request))
    return await stage_job(request, state, username, account, options, numbers=numbers, upload=upload, claim=claim)


async def stage_job(
    request: Request,
    state: AppState,
    username: str,
    account: Account,
    options: JobOptions,
    *,
    numbers: list[str] | None = None,
    upload: Upload | None = None,
    claim: Claim | None = None,
    idempotency_key: str | None = None,
) -> Response:
    """Stage the numbers (or the upload), reserve and queue the job: the 202, or the ``ApiError`` why not.

    The job API and the console's upload form both submit through here, so a
    job from either gets the same checks, the same reservation and the same 402.
    An upload's key (``Idempotency-Key``, or ``idempotency_key``) is claimed
    once its last byte was read; ``claim`` is a JSON body's, claimed before.
    """
    settings = state.settings
    stager = Stager(
        state.engine,
        _terms(state, account, request),
        options,
        settings.max_job_numbers,
        timedelta(days=settings.job_retention_days),
    )
    request_id: str = request.state.request_id
    response: list[Response] = []

    def queued(conn: Connection, job: JobRecord) -> None:
        """In the transaction that reserves and queues: the 202, and the record a retry replays."""
        body = _encoder.encode(job_object(job))
        headers = {"content-type": JSON, "location": f"/v1/hlr/jobs/{job.public_id}"}
        if claim is not None:
            state.idempotency.store(conn, [claim.completed(202, headers, body, request_id)])
        response.append(Response(body, status_code=202, headers=headers))

    cpu = state.jobs_cpu
    try:
        if upload is None:
            step = settings.job_chunk_numbers
            for start in range(0, len(numbers or ()), step):
                staged = await cpu.run(stage_numbers, (numbers or [])[start : start + step], step)
                await anyio.to_thread.run_sync(stager.add, staged)
        else:
            digest = hashlib.sha256()
            await _read_upload(upload.blocks, upload.reader, stager, cpu, settings, digest)
            fingerprinted = upload.head + b"\n" + digest.hexdigest().encode()
            began = await state.idempotency.begin(request, account.id, ROUTE, fingerprinted, key=idempotency_key)
            if isinstance(began, Response):
                await anyio.to_thread.run_sync(stager.discard)
                return began
            claim = began
        await anyio.to_thread.run_sync(stager.finish, queued)
    except asyncio.CancelledError:
        _discard(stager)
        raise  # a reservation may still commit: the key (if any) stays held until its lease ends
    except BaseException as exc:
        _discard(stager)
        if claim is not None:
            await state.idempotency.release(claim)  # nothing was reserved: the key may be used again
        if isinstance(exc, InsufficientCredits):
            state.accounts.note_balance(username, exc.balance, exc.reserved)
            raise _no_credits(exc.spendable, exc.amount, exc.reserved, job=True) from None
        if isinstance(exc, TooManyNumbers):
            raise too_many_job_numbers(exc.limit) from None
        if isinstance(exc, UploadError):
            raise invalid_parameters(f"The numbers cannot be read: {exc}.") from None
        raise
    return response[0]


def _discard(stager: Stager) -> None:
    try:
        stager.discard()  # in this thread, even when cancelled: a refused job leaves nothing
    except Exception:
        log.exception("discarding a refused job's staged chunks failed; the sweeper will")


def _terms(state: AppState, account: Account, request: Request) -> JobTerms:
    style = answer_style(account.status_style or state.settings.status_style, request.headers.get("user-agent"))
    return JobTerms(account_id=account.id, prices=state.prices, account_price=account.price, style=style)


async def jobs_collection(request: Request) -> Response:
    """``/v1/hlr/jobs``: POST submits, GET lists (one route, so a 405's ``Allow`` names both)."""
    return await (submit_job(request) if request.method == "POST" else list_jobs(request))


async def list_jobs(request: Request) -> Response:
    """``GET /v1/hlr/jobs``: the account's jobs, newest first, ``limit`` at a time, from ``cursor``."""
    state: AppState = request.app.state.numlookup
    _, account = await _authenticate(request, state)
    text = request.query_params.get("limit", str(DEFAULT_PAGE)).strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
        raise invalid_parameters(f"limit must be a whole number from 1 to {MAX_PAGE} (got {text!r}).")
    cursor = request.query_params.get("cursor") or None
    try:
        records, after = await anyio.to_thread.run_sync(queue.page, state.engine, account.id, int(text), cursor)
    except queue.BadCursor as exc:
        raise invalid_parameters(f"{exc}.") from None
    return _json(JobList(jobs=[job_object(r) for r in records], next_cursor=after))


async def _job(request: Request) -> tuple[AppState, JobRecord]:
    state: AppState = request.app.state.numlookup
    _, account = await _authenticate(request, state)
    job_id: str = request.path_params["job_id"]
    job = await anyio.to_thread.run_sync(queue.get, state.engine, job_id, account.id)
    if job is None:
        raise job_not_found(job_id)
    return state, job


async def show_job(request: Request) -> Response:
    """``GET /v1/hlr/jobs/{job_id}``."""
    _, job = await _job(request)
    return _json(job_object(job))


async def job_results(request: Request) -> Response:
    """``GET /v1/hlr/jobs/{job_id}/results?format=csv|jsonl``: the chunks done so far, in input order, streamed.

    Complete once the job is COMPLETED; while it runs, the part processed so far
    (``X-Job-Status`` says which). One chunk is in memory at a time.
    """
    fmt = request.query_params.get("format", "csv")
    if fmt not in render.RESULT_FORMATS:
        raise invalid_parameters(f"format must be csv or jsonl (got {fmt!r}).")
    state, job = await _job(request)
    return await results_response(state, job, "csv" if fmt == "csv" else "jsonl")


async def results_response(state: AppState, job: JobRecord, chosen: render.ResultFormat) -> StreamingResponse:
    """A job's results streamed a chunk at a time (the job API's and the console's download)."""
    chunks = await anyio.to_thread.run_sync(queue.result_chunks, state.engine, job.id)

    async def lines() -> AsyncIterator[bytes]:
        head = render.header(chosen)
        if head:
            yield head
        for seq in chunks:
            data = await anyio.to_thread.run_sync(queue.result_data, state.engine, job.id, seq)
            if data is not None:  # None: deleted since (the job expired meanwhile)
                yield await anyio.to_thread.run_sync(render.render, data, chosen)

    headers = {
        "X-Job-Status": job.status,
        "Content-Disposition": f'attachment; filename="{job.public_id}.{chosen}"',
    }
    return StreamingResponse(lines(), media_type=render.MEDIA_TYPES[chosen], headers=headers)


async def stop_job(request: Request) -> Response:
    """``POST /v1/hlr/jobs/{job_id}/stop``: STOPPED at once if no chunk is in a worker's hands, else STOP_REQUESTED."""
    state: AppState = request.app.state.numlookup
    _, account = await _authenticate(request, state)
    return _json(job_object(await stop(state, request.path_params["job_id"], account.id)))


async def stop(state: AppState, job_id: str, account_id: int) -> JobRecord:
    """Stop the account's job: the job as it is now; 404 for another account's or none, 409 once it ended."""
    retention = timedelta(days=state.settings.job_retention_days)
    stopped = await anyio.to_thread.run_sync(queue.stop, state.engine, job_id, account_id, retention)
    if stopped is None:
        raise job_not_found(job_id)
    job, before = stopped
    if before in ("COMPLETED", "FAILED"):
        raise job_ended(job_id, before)
    return job
