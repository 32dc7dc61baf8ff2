"""The account's bulk jobs: list, upload, progress, results, stop, through the job API's own code.

An upload is read by the same intake as ``POST /v1/hlr/jobs`` with a file body
(``api.jobs.stage_job``: the line reader, the checks, the reservation, the 402
when the credits do not cover it); the form's file is streamed into it a
megabyte at a time. Downloads are ``api.jobs.results_response``, the stop is
``api.jobs.stop``. A job is looked up with the session's account, so another
account's job id is the same 404 page as one that never existed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import anyio.to_thread
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response

from numlookup.api.console.csrf import checked_form
from numlookup.api.console.guards import ConsoleUser, api_work_form, require_account
from numlookup.api.console.pages import finish, redirect, refusal, render
from numlookup.api.errors import ApiError
from numlookup.api.jobs import READ_BYTES, Upload, check_callback, job_options, results_response, stage_job, stop
from numlookup.api.state import AppState
from numlookup.billing import format_amount
from numlookup.jobs import queue
from numlookup.jobs.intake import LineReader
from numlookup.jobs.model import FINISHED, JobRecord

PAGE = 20
UPLOAD_PATH = "/console/account/jobs"  # the abuse guard gives it the job API's body limits (api.limits)


def job_view(job: JobRecord) -> dict[str, object]:
    """What the pages show of a job: counts, money as decimal credits, whether it is still moving."""
    return {
        "id": job.public_id,
        "status": job.status,
        "friendly_name": job.friendly_name or "",
        "created_at": job.created_at.isoformat(timespec="seconds")[:19],
        "total": job.total_count,
        "processed": job.processed_count,
        "valid": job.valid_count,
        "invalid": job.invalid_count,
        "duplicates": job.duplicate_count,
        "reserved": format_amount(job.reserved),
        "charged": format_amount(job.charged),
        "callback_url": job.callback_url or "",
        "error": job.error or "",
        "finished": job.status in FINISHED,
        "stoppable": job.status not in FINISHED and job.status != "STOP_REQUESTED",
    }


async def _list(request: Request, user: ConsoleUser, status: int = 200, **context: object) -> Response:
    state: AppState = request.app.state.numlookup
    cursor = request.query_params.get("after") or None
    try:
        records, after = await anyio.to_thread.run_sync(queue.page, state.engine, user.account_id, PAGE, cursor)
    except queue.BadCursor:
        raise refusal(request, 404, "No such page", "That page of jobs does not exist.") from None
    return render(
        request,
        "jobs.html",
        status,
        title="Jobs",
        jobs=[job_view(r) for r in records],
        after=after,
        key=str(uuid.uuid4()),
        **context,
    )


async def jobs_page(request: Request) -> Response:
    return await _list(request, await require_account(request))


async def _blocks(file: UploadFile) -> AsyncIterator[bytes]:
    while block := await file.read(READ_BYTES):
        yield block


async def upload(request: Request) -> Response:
    user, account, form = await api_work_form(request)
    state: AppState = request.app.state.numlookup
    file = form.get("file")
    friendly = str(form.get("friendly_name", "")).strip() or None
    callback = str(form.get("callback_url", "")).strip() or None
    header = form.get("header") == "yes"
    kept = {"friendly_name": friendly or "", "callback_url": callback or ""}
    if not isinstance(file, UploadFile) or not file.filename:
        return await _list(request, user, 400, error="Choose a file of numbers to upload.", form=kept)
    key = str(form.get("idempotency_key", "")) or None
    try:
        options = job_options(friendly, callback, None)
        await check_callback(state.settings, options.callback_url)
        head = b"console\n" + json.dumps([friendly, callback, header]).encode()
        answer = await stage_job(
            request,
            state,
            account.api_username,
            account,
            options,
            upload=Upload(_blocks(file), LineReader(None, header), head),
            idempotency_key=key,
        )
    except ApiError as exc:
        return await _list(request, user, exc.http_status, error=exc.description, form=kept)
    job_id = json.loads(bytes(answer.body))["id"]
    return redirect(request, f"/console/account/jobs/{job_id}")


async def _job(request: Request, user: ConsoleUser) -> JobRecord:
    state: AppState = request.app.state.numlookup
    job_id: str = request.path_params["job_id"]
    job = await anyio.to_thread.run_sync(queue.get, state.engine, job_id, user.account_id)
    if job is None:
        raise refusal(request, 404, "No such job", "There is no job with that id on this account.")
    return job


async def job_page(request: Request) -> Response:
    user = await require_account(request)
    job = await _job(request, user)
    message = "The job is stopping." if request.query_params.get("m") == "stopped" else None
    return render(request, "job.html", title=f"Job {job.public_id}", job=job_view(job), message=message)


async def job_progress(request: Request) -> Response:
    """The progress fragment htmx polls while the job runs (it stops polling once the job has finished)."""
    user = await require_account(request)
    job = await _job(request, user)
    return render(request, "_job_progress.html", job=job_view(job))


async def job_results(request: Request) -> Response:
    user = await require_account(request)
    fmt = request.query_params.get("format", "csv")
    if fmt not in ("csv", "jsonl"):
        raise refusal(request, 400, "No such format", "Results come as csv or jsonl.")
    job = await _job(request, user)
    state: AppState = request.app.state.numlookup
    return finish(request, await results_response(state, job, "csv" if fmt == "csv" else "jsonl"))


async def stop_job(request: Request) -> Response:
    user = await require_account(request)
    await checked_form(request, user.session)
    job = await _job(request, user)
    state: AppState = request.app.state.numlookup
    try:
        await stop(state, job.public_id, user.account_id)
    except ApiError as exc:
        if exc.http_status == 404:
            raise refusal(request, 404, "No such job", "There is no job with that id on this account.") from None
        return render(
            request, "job.html", exc.http_status, title=f"Job {job.public_id}", job=job_view(job), error=exc.description
        )
    return redirect(request, f"/console/account/jobs/{job.public_id}?m=stopped")
