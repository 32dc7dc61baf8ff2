"""The job worker: claims a chunk, asks the live service for its routed numbers, renders, settles; again.

It runs as a task in every ``numlookup serve`` worker process (``job_worker``)
and alone in ``numlookup jobs work``. One chunk at a time per process: the
CPU-bound part of an offline chunk (decoding, rendering, compressing) runs in a
thread, in one go of about 0.1 s per 50,000 numbers; the heavy work, resolving,
was done by the submit. Live-routed numbers go to the same ``LiveService`` the
sync API uses, in its background lane (see ``live.dispatcher``): at most
``job_live_concurrency`` requests per source, and only when no sync number is
waiting, each slice of numbers waiting up to ``job_live_deadline_seconds``.

While it works on a chunk, a heartbeat renews the chunk's lease every third of
its length; a worker that dies stops renewing, and once the lease runs out any
worker takes the chunk over from the start (nothing of it was committed). A
chunk that fails ``queue.MAX_ATTEMPTS`` times fails its job.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import timedelta
from functools import partial

import anyio.to_thread
import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Engine

from numlookup.billing.ledger import Counts
from numlookup.billing.money import format_amount
from numlookup.billing.prices import Prices
from numlookup.jobs import cpu, queue
from numlookup.jobs.cpu import Cpu, CpuThread
from numlookup.live.service import LiveResult, LiveService
from numlookup.metrics import Metrics
from numlookup.numbering.models import Resolution
from numlookup.results import iso_time
from numlookup.settings import Settings

log = logging.getLogger("numlookup.jobs")

SWEEP_SECONDS = 60.0
# Live numbers are asked in slices, each with its own deadline, a few slices at a time:
# a chunk's thousand numbers queued at once would spend their deadline waiting for slots.
LIVE_SLICE = 50
SLICES_IN_FLIGHT = 4


def worker_name() -> str:
    """This process as a lease owner: host, pid and a random tag (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


class JobRunner:
    def __init__(self, engine: Engine, settings: Settings, live: LiveService | None, cpu: Cpu) -> None:
        self.engine = engine
        self.live = live
        self.cpu = cpu
        self.lease_seconds = settings.job_lease_seconds
        self.poll_seconds = settings.job_poll_seconds
        self.live_deadline = settings.job_live_deadline_seconds
        self.retention = timedelta(days=settings.job_retention_days)
        self.owner = worker_name()
        self.chunks = 0  # chunks this worker settled
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Finish the chunk in hand, then return from ``run``."""
        self._stopping.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_sweep = 0.0
        while not self._stopping.is_set():
            worked = False
            try:
                if loop.time() >= next_sweep:
                    next_sweep = loop.time() + SWEEP_SECONDS
                    await anyio.to_thread.run_sync(queue.sweep, self.engine, self.retention)
                worked = await self.work_once()
            except Exception:  # the database is away, say: try again after a pause
                log.exception("job worker: a round failed")
            if not worked:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.poll_seconds)

    async def work_once(self) -> bool:
        """Claim and process one chunk; False when there was none."""
        claim = await anyio.to_thread.run_sync(queue.claim, self.engine, self.owner, self.lease_seconds)
        if claim is None:
            return False
        if claim.attempts > queue.MAX_ATTEMPTS:
            why = f"chunk {claim.seq} could not be processed in {queue.MAX_ATTEMPTS} attempts: {claim.last_error}"
            log.error("job %s failed: %s", claim.job.public_id, why)
            await anyio.to_thread.run_sync(queue.fail, self.engine, claim.job.id, why, self.retention)
            return True
        heartbeat = asyncio.create_task(self._heartbeat(claim))
        try:
            await self._process(claim)
        except asyncio.CancelledError:
            queue.abandon(self.engine, claim, self.owner, "the worker was stopped")  # at once: another may take it
            raise
        except Exception as exc:
            log.exception("job %s: chunk %d failed", claim.job.public_id, claim.seq)
            await anyio.to_thread.run_sync(
                queue.abandon, self.engine, claim, self.owner, f"{type(exc).__name__}: {exc}"
            )
        finally:
            heartbeat.cancel()
        return True

    async def _heartbeat(self, claim: queue.Claim) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                mine = await anyio.to_thread.run_sync(queue.renew, self.engine, claim, self.owner, self.lease_seconds)
            except Exception:
                log.exception("job %s: renewing the lease of chunk %d failed", claim.job.public_id, claim.seq)
                continue
            if not mine:
                log.warning("job %s: chunk %d was taken over; its work will be dropped", claim.job.public_id, claim.seq)
                return

    async def _process(self, claim: queue.Claim) -> None:
        job = claim.job
        firsts = _bits(claim.firsts, claim.rows)
        live_rows: dict[int, LiveResult] = {}
        answers: dict[str, LiveResult] = {}
        charged_live: set[str] = set()
        if self.live is not None and claim.routed:
            candidates = await self.cpu.run(cpu.routed, claim.prepared)
            live_rows, answers, charged_live = await self._ask(candidates, firsts, job.max_age)
        prices = Prices(offline=job.price_offline, cache=job.price_cache, live=job.price_live)
        charged_rows = np.flatnonzero(firsts).tolist()
        classes = [live_rows[row].charge_class if row in live_rows else "offline" for row in charged_rows]
        amount = sum(prices.of(charge_class, None) for charge_class in classes)
        data, invalid = await self.cpu.run(
            cpu.render_chunk, claim.prepared, job.style, iso_time(job.created_at), live_rows
        )
        cached, live = classes.count("cache"), classes.count("live")
        counts = Counts(offline=len(classes) - cached - live, cached=cached, live=live, invalid=invalid)
        store = None
        if self.live is not None and answers:
            attached = self.live.attachment(answers, partial(prices.of, account_price=None), charged=charged_live)
            store = partial(_store, self.live, attached)
        settled = await anyio.to_thread.run_sync(
            partial(
                queue.settle,
                self.engine,
                claim,
                self.owner,
                data=data,
                amount=amount,
                numbers=len(charged_rows),
                counts=counts,
                retention=self.retention,
                store=store,
            )
        )
        if settled is None:
            log.warning("job %s: chunk %d was no longer ours; dropped", job.public_id, claim.seq)
            return
        record, after = settled
        if after is not None:
            after()
        self.chunks += 1
        if record.status in ("COMPLETED", "STOPPED"):
            log.info(
                "job %s %s: %d numbers, charged %s credits",
                record.public_id,
                record.status,
                record.total_count,
                format_amount(record.charged),
            )

    async def _ask(
        self, candidates: list[tuple[int, Resolution]], firsts: npt.NDArray[np.bool_], max_age: float | None
    ) -> tuple[dict[int, LiveResult], dict[str, LiveResult], set[str]]:
        """Live results for the routed rows: per row; per number (for the cache and usage); the charged numbers."""
        assert self.live is not None
        live = self.live
        rows_of: dict[str, list[int]] = {}
        resolution_of: dict[str, Resolution] = {}
        for row, resolution in candidates:
            if resolution.e164 is not None:
                rows_of.setdefault(resolution.e164, []).append(row)
                resolution_of.setdefault(resolution.e164, resolution)
        charged = [n for n, rows in rows_of.items() if any(firsts[r] for r in rows)]
        repeats = [n for n, rows in rows_of.items() if not any(firsts[r] for r in rows)]
        gate = asyncio.Semaphore(SLICES_IN_FLIGHT)
        answers: dict[str, LiveResult] = {}

        async def ask(numbers: list[str], age: float | None) -> None:
            async with gate:
                resolutions = [resolution_of[n] for n in numbers]
                answers.update(await live.lookup(resolutions, age, self.live_deadline, background=True))

        # A repeat of a number charged in an earlier chunk takes any fresh cached answer: it is not charged again.
        await asyncio.gather(
            *(ask(charged[i : i + LIVE_SLICE], max_age) for i in range(0, len(charged), LIVE_SLICE)),
            *(ask(repeats[i : i + LIVE_SLICE], None) for i in range(0, len(repeats), LIVE_SLICE)),
        )
        by_row = {row: answers[n] for n, rows in rows_of.items() if n in answers for row in rows}
        return by_row, answers, set(charged)


def _bits(packed: bytes, rows: int) -> npt.NDArray[np.bool_]:
    if not packed:
        return np.zeros(rows, dtype=np.bool_)
    return np.unpackbits(np.frombuffer(packed, dtype=np.uint8), count=rows).astype(np.bool_)


def _store(live: LiveService, attached: Sequence[object], conn: Connection) -> Callable[[], None] | None:
    return live.store(conn, attached)


def work(settings: Settings, engine: Engine) -> int:
    """``numlookup jobs work``: a process that only works on jobs, until SIGTERM or Ctrl+C; returns chunks settled."""
    from numlookup.datasets.follower import follow, load_operator_data
    from numlookup.numbering import Resolver
    from numlookup.numbering.resolver import shared_plan

    resolver = Resolver(
        operator=load_operator_data(engine, settings.data_path), plan=shared_plan(settings.data_path / "cache")
    )

    async def main() -> int:
        live = LiveService.from_settings(settings, engine, resolver, Metrics())
        runner = JobRunner(engine, settings, live, CpuThread(settings, engine))
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, runner.stop)
        tasks = [asyncio.create_task(follow(resolver, engine, settings.data_path, settings.dataset_poll_seconds))]
        if live is not None:
            tasks.append(asyncio.create_task(live.follow_usage()))
        log.info("job worker %s started", runner.owner)
        try:
            await runner.run()
        finally:
            for task in tasks:
                task.cancel()
            if live is not None:
                await live.close()
        log.info("job worker %s stopped after %d chunks", runner.owner, runner.chunks)
        return runner.chunks

    return asyncio.run(main())
