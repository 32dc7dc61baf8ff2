"""The Starlette application: routes, error rendering and start-up.

``create_app`` is a factory so every uvicorn worker process builds its own engine
and loads its own numbering data.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from functools import partial
from typing import Any

import msgspec
from sqlalchemy import Connection, select
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp

from numlookup import __version__
from numlookup.accounts.cache import AccountCache
from numlookup.api.admin import ROUTES as ADMIN_ROUTES
from numlookup.api.coalescer import ResolveCoalescer
from numlookup.api.console import console_routes
from numlookup.api.direct import DirectRoute
from numlookup.api.errors import ApiError, ErrorCode, error_response, method_not_allowed, not_found, not_ready
from numlookup.api.idempotency import Completed, IdempotencyStore
from numlookup.api.jobs import job_results, jobs_collection, show_job, stop_job
from numlookup.api.limits import AbuseGuard
from numlookup.api.lookup import lookup
from numlookup.api.refusals import LIFESPAN_KEY, ProtocolRefusals
from numlookup.api.request_id import RequestIdMiddleware
from numlookup.api.state import AppState
from numlookup.api.sync_edge import SyncEdge
from numlookup.billing import rollup
from numlookup.billing.charger import GroupCharger
from numlookup.billing.prices import Prices
from numlookup.datasets.catalog import KINDS
from numlookup.datasets.follower import follow, load_operator_data
from numlookup.jobs.cpu import CpuProcess
from numlookup.jobs.runner import JobRunner
from numlookup.live.service import LiveService
from numlookup.metrics import CONTENT_TYPE, Metrics
from numlookup.numbering import Resolver
from numlookup.numbering.resolver import shared_plan
from numlookup.settings import Settings, get_settings
from numlookup.store import make_engine, nodes
from numlookup.store.tables import accounts
from numlookup.store.write_probe import probe_write
from numlookup.webhooks.worker import DeliveryWorker

log = logging.getLogger("numlookup.api")
# A readiness probe must answer in time even when the database hangs rather than refuses.
READY_TIMEOUT_SECONDS = 3.0
# A number whose answer is fixed by the shipped data: resolving it proves the tables work.
READY_PROBE_NUMBER = "+37251000001"
_encoder = msgspec.json.Encoder()


async def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(not_found(request.method, request.url.path))
    if exc.status_code == 405:
        # Starlette names the route's methods in the exception's Allow header.
        return error_response(
            method_not_allowed(request.method, request.url.path, (exc.headers or {}).get("Allow", ""))
        )
    return error_response(ApiError(exc.status_code, ErrorCode.INVALID_PARAMETERS, str(exc.detail)))


async def healthz(_request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


async def readyz(request: Request) -> Response:
    """Ready when this worker can serve a lookup: the database answers and takes writes, the numbering data resolves.

    Unlike ``/healthz`` (the process is alive), this is what a load balancer
    should route by: a node whose database is gone, or refuses writes (a full
    disk, a read-only file), would answer every lookup 500, since every lookup's
    charge is a write. ``data`` names the operator dataset versions this worker
    serves (null: none imported, the shipped data alone).
    """
    state: AppState = request.app.state.numlookup

    def database_answers() -> None:
        with state.engine.connect() as conn:
            conn.execute(select(accounts.c.id).limit(1)).first()

    for check, failure in (
        (database_answers, "does not answer"),
        (partial(probe_write, state.engine), "refuses writes"),
    ):
        try:
            await asyncio.wait_for(run_in_threadpool(check), READY_TIMEOUT_SECONDS)
        except Exception as exc:  # any failure, a timeout included, means "do not route here"
            log.warning("not ready: the database %s: %s", failure, exc)
            raise not_ready(f"the database {failure}") from None
    [probe] = state.resolver.resolve([READY_PROBE_NUMBER])
    if not probe.valid:
        raise not_ready("the numbering data does not resolve")
    versions = state.resolver.operator.versions
    body = {"status": "ready", "database": "ok", "data": {kind: versions.get(kind) for kind in KINDS}}
    return Response(_encoder.encode(body), media_type="application/json")


def freeze_heap() -> None:
    """Move every object alive at the end of start-up to the collector's permanent generation.

    Why: a worker's start-up leaves about 114,000 tracked objects that live as
    long as it does (the numbering data's Python side, networks and countries,
    SQLAlchemy's tables, the libraries' modules), some of them large containers,
    and every full collection walks all of them: 170 ms on the machine this was
    measured on. Under a burst the objects of the requests in flight set off full
    collections: two took 160 and 137 ms of the event loop in one live burst of
    bench/live.py (timed with ``gc.callbacks``), and no request moved meanwhile.
    Frozen, they are never walked again; a collection costs what the young
    objects cost (4 and 19 ms in the same burst). Start-up's own garbage is frozen
    with them, once: 87 objects when measured, not worth a full collection's time
    at every start.
    """
    gc.freeze()


# The young generation's collection threshold while the app serves (CPython's own: 700).
# Above what a burst of 1,000 connections holds alive at once (see collect_young_less_often).
YOUNG_GENERATION_THRESHOLD = 250_000


def collect_young_less_often() -> tuple[int, int, int]:
    """Raise the young generation's threshold for the app's lifetime; returns the thresholds it replaced.

    Why: CPython collects the young generation once tracked allocations outrun
    deallocations by the threshold, and the objects of the requests in flight
    are just such an excess: they are alive, so a collection frees none of them
    and moves them all to the middle generation, whose collections walk them
    again. Objects freed by their reference counts take their count back (in
    CPython 3.11 a deallocation lowers it), so what sets collections off is only
    what is alive at once, plus the garbage in reference cycles.

    At CPython's 700, a collection every 30 or so requests on the fused edge's
    loop (8–9 µs of the loop per request, 7–9 % of its CPU). At 10,000, a burst
    of 1,000 concurrent connections (bench/live.py) still set off 5–6 young
    collections and one middle one, 100–120 ms of the loop's CPU a burst, every
    walked object alive; at 100,000 still one young collection per live burst
    (45–68 ms of CPU, up to 100 ms of the loop). At 250,000, one in a whole
    bench/live.py run (14 bursts), burst CPU 510 → 350 ms (medians, against
    10,000), peak RSS no higher (250–270 MB either way). Memory stays bounded by
    the threshold: cyclic garbage is collected once 250,000 more objects are
    alive than after the last collection (the server's own requests leave none,
    see serving.HeadWithBody; a live run's upstream responses left ~14,000 objects
    in all), and a collection then walks at most about that many (~120 ms at the
    0.5 µs an object measured here; rare).
    """
    previous = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *previous[1:])
    return previous


async def _flush_charges(state: AppState) -> None:
    """Let a charge commit still running in a thread finish before the engine is disposed.

    At lifespan shutdown uvicorn has answered every request, or cancelled those left
    after ``timeout_graceful_shutdown_seconds``; a cancelled request's charge may be
    committing. Bounded by the same timeout, so a hung database cannot hold the exit.
    """
    timeout = state.settings.timeout_graceful_shutdown_seconds
    try:
        await asyncio.wait_for(state.charger.close(), timeout)
    except TimeoutError:
        log.error("shutdown: a charge commit did not finish within %gs", timeout)


async def _stop_jobs(runner: JobRunner, task: asyncio.Task[None], timeout: float) -> None:
    """Let the job worker settle the chunk in hand; past the timeout it gives the chunk back, uncharged."""
    runner.stop()
    try:
        await asyncio.wait_for(task, timeout)
    except TimeoutError:
        log.warning("shutdown: the job worker's chunk did not finish within %gs; it is given back", timeout)
    except Exception:
        log.exception("the job worker failed")


def _charge_attachments(
    idempotency: IdempotencyStore, live: LiveService | None
) -> Callable[[Connection, list[Any]], Callable[[], None] | None]:
    """What a charge transaction stores with the charges: replayable responses, and the live layer's answers."""

    def store(conn: Connection, attached: list[Any]) -> Callable[[], None] | None:
        idempotency.store(conn, [item for item in attached if isinstance(item, Completed)])
        return live.store(conn, [item for item in attached if not isinstance(item, Completed)]) if live else None

    return store


class NumlookupApp(Starlette):
    """Starlette with the app's own edge in place of Starlette's outer error middleware.

    Starlette wraps every app in ``ServerErrorMiddleware``, which answers an
    unexpected error itself and then re-raises it to the server; the request id
    middleware already answers such errors with the wire's clean 500 and keeps the
    connection (see ``api.request_id``), so that layer only cost every request a
    frame. The stack, outermost first: request id (errors, request log, metrics),
    the abuse guard, the lookup route called directly (``api.direct``), then
    Starlette's exception handlers and router for everything else.
    """

    def __init__(self, *, edge: Callable[[ASGIApp], ASGIApp], **options: Any) -> None:
        self._edge = edge
        super().__init__(**options)

    def build_middleware_stack(self) -> ASGIApp:
        return self._edge(ExceptionMiddleware(self.router, handlers=dict(self.exception_handlers)))


def create_app(settings: Settings | None = None, *, fused_sync: bool = True) -> Starlette:
    """The app; ``fused_sync=False`` answers ``POST /v1/hlr/sync`` through the general stack instead of
    ``api.sync_edge`` (only the test that holds the two equal asks for it)."""
    settings = settings or get_settings()
    document: bytes | None = None  # built at its first request: its modules (the admin API's) are not a start's

    async def openapi(_request: Request) -> Response:
        nonlocal document
        if document is None:
            from numlookup.api.openapi import openapi_document

            limits = settings.max_numbers_per_request, settings.max_job_numbers
            document = _encoder.encode(openapi_document(*limits, admin=bool(settings.admin_token)))
        return Response(document, media_type="application/json")

    engine = make_engine(settings.effective_database_url, sqlite_synchronous=settings.sqlite_synchronous)
    resolver = Resolver(
        operator=load_operator_data(engine, settings.data_path), plan=shared_plan(settings.data_path / "cache")
    )
    metrics = Metrics()
    live = LiveService.from_settings(settings, engine, resolver, metrics)
    idempotency = IdempotencyStore(
        engine,
        ttl=timedelta(hours=settings.idempotency_ttl_hours),
        lease=timedelta(seconds=settings.idempotency_lease_seconds),
    )
    state = AppState(
        settings=settings,
        engine=engine,
        accounts=AccountCache(engine, settings.account_refresh_seconds),
        resolver=resolver,
        coalescer=ResolveCoalescer(resolver),
        prices=Prices.from_settings(settings),
        live=live,
        metrics=metrics,
        jobs_cpu=CpuProcess(settings),
        idempotency=idempotency,
        charger=GroupCharger(
            engine,
            enabled=settings.group_commit,
            on_batch=metrics.charge_batch.observe,
            # Fresh live answers, and the responses idempotency keys replay, are committed with
            # the charges of the requests that made them.
            store_attached=_charge_attachments(idempotency, live),
            writer_process=settings.ledger_writer_process,
            sqlite_synchronous=settings.sqlite_synchronous,
        ),
    )

    def node_status() -> tuple[bool, int]:
        """What the heartbeat says of this worker: ready if the numbering data resolves; requests served."""
        [probe] = state.resolver.resolve([READY_PROBE_NUMBER])
        return probe.valid, metrics.served

    async def metrics_route(_request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[dict[str, object]]:
        follower = asyncio.create_task(
            follow(state.resolver, engine, settings.data_path, settings.dataset_poll_seconds)
        )
        account_poll = asyncio.create_task(state.accounts.follow())
        usage_flush = asyncio.create_task(state.live.follow_usage()) if state.live is not None else None
        runner = JobRunner(engine, settings, state.live, state.jobs_cpu) if settings.job_worker else None
        jobs_task = asyncio.create_task(runner.run()) if runner is not None else None
        key_prune = asyncio.create_task(idempotency.follow())
        # Every worker process sends due webhooks; leases keep two from sending one row.
        webhooks = DeliveryWorker(engine, settings)
        deliveries = asyncio.create_task(webhooks.run())
        # The console's data: this worker's row of ``nodes``, and the usage charts' rollup (workers take turns).
        node_beat = asyncio.create_task(nodes.heartbeat(engine, nodes.Identity.this_process(__version__), node_status))
        rollup_task = asyncio.create_task(rollup.follow(engine))
        # Everything loaded so far lives as long as the worker: out of the collector's sight from now on.
        freeze_heap()
        thresholds = collect_young_less_often()
        # The server answers headers that never finish itself, in the words built here.
        yield {LIFESPAN_KEY: ProtocolRefusals(metrics, access_log=settings.access_log)}
        if runner is not None and jobs_task is not None:
            await _stop_jobs(runner, jobs_task, settings.timeout_graceful_shutdown_seconds)
        deliveries.cancel()
        await asyncio.gather(deliveries, return_exceptions=True)  # a claim in a thread finishes first
        await webhooks.close()
        key_prune.cancel()
        node_beat.cancel()
        rollup_task.cancel()
        await asyncio.gather(node_beat, rollup_task, return_exceptions=True)  # a write in a thread finishes first
        account_poll.cancel()
        follower.cancel()
        if usage_flush is not None:
            usage_flush.cancel()
        await _flush_charges(state)
        if state.live is not None:
            await state.live.close()
        state.jobs_cpu.close()
        state.engine.dispose()
        metrics.flush()
        metrics.worker_stopped()
        gc.set_threshold(*thresholds)

    lookup_route = Route("/v1/hlr/sync", lookup, methods=["POST"])

    def edge(routed: ASGIApp) -> ASGIApp:
        # The request id first, so even a refusal by the guard carries one.
        guard = AbuseGuard(DirectRoute(routed, lookup_route), settings=settings)
        general = RequestIdMiddleware(guard, access_log=settings.access_log, metrics=metrics)
        if not fused_sync:
            return general
        # POST /v1/hlr/sync in one frame (api.sync_edge), sharing the guard's state with everything else.
        return SyncEdge(general, state=state, guard=guard, route=lookup_route, access_log=settings.access_log)

    app = NumlookupApp(
        edge=edge,
        routes=[
            lookup_route,
            Route("/v1/hlr/jobs", jobs_collection, methods=["GET", "POST"]),  # one route: a 405 names both
            Route("/v1/hlr/jobs/{job_id}", show_job, methods=["GET"]),
            Route("/v1/hlr/jobs/{job_id}/results", job_results, methods=["GET"]),
            Route("/v1/hlr/jobs/{job_id}/stop", stop_job, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            Route("/metrics", metrics_route, methods=["GET"]),
            *ADMIN_ROUTES,
            *console_routes(settings),
        ],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error},  # other errors: RequestIdMiddleware
        lifespan=lifespan,
    )
    app.state.numlookup = state
    return app
