"""``numlookup jobs``: bulk jobs of every account, for operators; and ``jobs work``, a dedicated job worker."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from numlookup.billing.money import format_amount
from numlookup.cli.base import CliError, database, out, print_json, settings, user_errors
from numlookup.cli.options import JsonOption

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from numlookup.jobs.model import JobRecord

app = typer.Typer(help="Bulk jobs: list, show, stop; and a worker that processes them.", no_args_is_help=True)

AccountOption = Annotated[str | None, typer.Option("--account", help="Only this account's jobs.")]


def _account_id(engine: Engine, name: str | None) -> int | None:
    from numlookup.accounts import get_account

    return None if name is None else get_account(engine, name).id


def _names(engine: Engine) -> dict[int, str]:
    from numlookup.accounts import list_accounts

    return {a.id: a.name for a in list_accounts(engine)}


def job_data(job: JobRecord, account: str) -> dict[str, Any]:
    """The API's job object, with the account it belongs to."""
    import msgspec

    from numlookup.jobs.model import job_object

    data: dict[str, Any] = msgspec.to_builtins(job_object(job))
    return {**data, "account": account}


def _job(engine: Engine, job_id: str, account: str | None) -> JobRecord:
    from numlookup.jobs import queue

    job = queue.get(engine, job_id, _account_id(engine, account))
    if job is None:
        owner = f" of account {account!r}" if account else ""
        raise CliError(f"no job {job_id!r}{owner}")
    return job


@app.command("list")
@user_errors
def list_(
    account: AccountOption = None,
    status: Annotated[str | None, typer.Option(help="Only jobs in this status (QUEUED, IN_PROGRESS, …).")] = None,
    last: Annotated[int, typer.Option(help="How many jobs, newest first.", min=1)] = 20,
    as_json: JsonOption = False,
) -> None:
    """The newest jobs of all accounts (or one)."""
    from numlookup.jobs import queue
    from numlookup.jobs.model import STATUSES

    if status is not None and status.upper() not in STATUSES:
        raise CliError(f"--status: unknown status {status!r}; choose one of {', '.join(STATUSES)}")
    engine = database()
    records, _ = queue.page(engine, _account_id(engine, account), last, None, status.upper() if status else None)
    names = _names(engine)
    if as_json:
        print_json([job_data(r, names.get(r.account_id, "")) for r in records])
        return
    table = Table("id", "account", "status", "created", "processed", "valid", "invalid", "dups", "reserved", "charged")
    for r in records:
        table.add_row(
            r.public_id,
            names.get(r.account_id, ""),
            r.status,
            r.created_at.isoformat()[:19],
            f"{r.processed_count}/{r.total_count}",
            str(r.valid_count),
            str(r.invalid_count),
            str(r.duplicate_count),
            format_amount(r.reserved),
            format_amount(r.charged),
        )
    out.print(table)


@app.command("show")
@user_errors
def show(job_id: str, account: AccountOption = None, as_json: JsonOption = False) -> None:
    """One job: counts, credits, times, where its results are."""
    engine = database()
    job = _job(engine, job_id, account)
    data = job_data(job, _names(engine).get(job.account_id, ""))
    if as_json:
        print_json(data)
        return
    for key, value in data.items():
        shown = (
            value["url"] + (f" (until {value['expires_at']})" if value["expires_at"] else "")
            if key == "result"
            else value
        )
        out.print(f"{key:16} {'' if shown is None else shown}", highlight=False, markup=False)


@app.command("stop")
@user_errors
def stop(job_id: str, account: AccountOption = None, as_json: JsonOption = False) -> None:
    """Stop a job: what is processed stays charged and served, the rest of its reservation is released."""
    from numlookup.jobs import queue

    engine = database()
    retention = timedelta(days=settings().job_retention_days)
    stopped = queue.stop(engine, _job(engine, job_id, account).public_id, _account_id(engine, account), retention)
    assert stopped is not None  # it was there a moment ago and jobs are deleted only once ended
    job, before = stopped
    if before in ("COMPLETED", "FAILED", "STOPPED"):
        raise CliError(f"the job {job_id} is {before} already")
    if as_json:
        print_json(job_data(job, _names(engine).get(job.account_id, "")))
    else:
        out.print(f"{job.public_id} {job.status}", highlight=False)


@app.command("work")
@user_errors
def work() -> None:
    """Work on jobs until SIGTERM or Ctrl+C, serving no HTTP (serve's workers do both unless job_worker = false)."""
    import logging.config

    from numlookup.jobs.runner import work as run_worker
    from numlookup.logs import logging_config, resolve_format

    config = settings()
    logging.config.dictConfig(logging_config(resolve_format(config.log_format), config.log_level))
    engine = database(config)
    try:
        run_worker(config, engine)
    finally:
        engine.dispose()
