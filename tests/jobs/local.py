"""Jobs in this process, on a real database: submitted through the intake, processed by a real JobRunner.

For tests of what a job's end writes and of the CLI, which need jobs in a
database without a server around them (tests/e2e submits over HTTP).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine

from numlookup.accounts import get_account
from numlookup.billing import ledger_rows
from numlookup.billing.prices import Prices
from numlookup.jobs import cpu
from numlookup.jobs.intake import JobOptions, JobTerms, Stager
from numlookup.jobs.model import JobRecord
from numlookup.jobs.runner import JobRunner
from numlookup.settings import Settings


def settings_for(data_dir: Path, url: str, **values: object) -> Settings:
    return Settings(data_dir=str(data_dir), database_url=url, **values)  # type: ignore[arg-type]  # Settings' own fields


def submit(
    engine: Engine,
    settings: Settings,
    account: str,
    numbers: Sequence[str],
    options: JobOptions | None = None,
) -> JobRecord:
    """What ``POST /v1/hlr/jobs`` does with a JSON body, without HTTP."""
    found = get_account(engine, account)
    terms = JobTerms(found.id, Prices.from_settings(settings), found.price, "seed")
    stager = Stager(engine, terms, options or JobOptions(), settings.max_job_numbers, timedelta(days=1))
    runner = cpu.CpuThread(settings, engine)

    async def stage() -> None:
        for start in range(0, len(numbers), settings.job_chunk_numbers):
            stager.add(
                await runner.run(
                    cpu.stage_numbers, numbers[start : start + settings.job_chunk_numbers], settings.job_chunk_numbers
                )
            )

    asyncio.run(stage())
    return stager.finish()


def work(engine: Engine, settings: Settings, chunks: int | None = None) -> int:
    """Process chunks (all there are, or ``chunks``) with a real JobRunner; returns how many."""
    runner = JobRunner(engine, settings, None, cpu.CpuThread(settings, engine))

    async def run() -> int:
        done = 0
        while (chunks is None or done < chunks) and await runner.work_once():
            done += 1
        return done

    return asyncio.run(run())


def job_charges(engine: Engine, account_name: str) -> list[int]:
    """What the account's jobs were charged, a ledger row each, newest first (micro-credits)."""
    account = get_account(engine, account_name)
    return [-r.amount for r in ledger_rows(engine, account.id, None) if r.kind == "job"]


def pieces(body: bytes, size: int) -> Iterator[bytes]:
    """A body as a client streams it, ``size`` bytes at a time (cut mid-line when small)."""
    for start in range(0, len(body), size):
        yield body[start : start + size]
