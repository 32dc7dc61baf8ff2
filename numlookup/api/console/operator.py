"""The operator's console pages under ``/console/operator``: traffic, accounts, live sources, data, nodes.

Every route first asks ``require_operator`` for the session (no session: the
operator login; an account holder's: the 403 page), then reads its figures with
``operator_views`` in a worker thread (they query the database) and renders.
The changes (create, top up, disable, enable) are POSTs whose CSRF token is
checked before the form is acted on; a refusal of the service is shown on the
accounts page with the account list as it still is, and a success redirects
(303) back to the list, so a reload does not book a top-up twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from numlookup.api.console import operator_views as views
from numlookup.api.console.csrf import checked_form
from numlookup.api.console.guards import require_operator
from numlookup.api.console.pages import finish, page, redirect, render, session_of
from numlookup.api.state import AppState
from numlookup.billing import rollup
from numlookup.datasets.catalog import KINDS
from numlookup.store import nodes

log = logging.getLogger("numlookup.api")
_encoder = msgspec.json.Encoder(decimal_format="number")
SOURCE_DAYS = 30  # the sources page's window, as `numlookup sources usage` defaults to
NODES_WINDOW = timedelta(hours=1)  # workers seen in the last hour; stale after a minute
TOP_ACCOUNTS = 10


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.numlookup
    return state


def _when(moment: datetime | None) -> str:
    return "–" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _page(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    return render(request, template, status, money=views.money, when=_when, **context)


# ------------------------------------------------------------------------------------------ traffic


async def home(request: Request) -> Response:
    await require_operator(request)
    state = _state(request)
    span = views.span(request.query_params.get("range"))
    if span is None:
        span = views.span(None)
        assert span is not None
    chosen = span

    def read() -> tuple[list[rollup.UsageBucket], list[rollup.AccountTotals]]:
        with state.engine.connect() as conn:
            buckets = rollup.traffic(conn, chosen.since, chosen.until, chosen.bucket)
            top = rollup.top_accounts(conn, chosen.since, chosen.until, TOP_ACCOUNTS)
        return buckets, top

    buckets, top = await run_in_threadpool(read)
    totals = {
        "requests": sum(b.requests for b in buckets),
        "numbers": sum(b.offline + b.cached + b.live for b in buckets),  # charged, as the top accounts count them
        "invalid": sum(b.invalid for b in buckets),
        "credits": sum(b.credits for b in buckets),
    }
    return _page(request, "operator/home.html", span=chosen, ranges=list(views.RANGES), totals=totals, top=top)


async def traffic_json(request: Request) -> Response:
    await require_operator(request)
    state = _state(request)
    span = views.span(request.query_params.get("range"))
    if span is None:
        return _json(request, {"error": f"range must be one of {', '.join(views.RANGES)}"}, 400)
    chosen = span

    def read() -> list[rollup.UsageBucket]:
        with state.engine.connect() as conn:
            return rollup.traffic(conn, chosen.since, chosen.until, chosen.bucket)

    return _json(request, views.chart_data(await run_in_threadpool(read), chosen))


def _json(request: Request, body: object, status: int = 200) -> Response:
    """JSON with the console's headers; decimals as JSON numbers, written exactly as the ledger's amounts."""
    return finish(request, Response(_encoder.encode(body), status, media_type="application/json"))


# ------------------------------------------------------------------------------------------ accounts


async def _accounts_page(request: Request, status: int = 200, **context: Any) -> Response:
    state = _state(request)

    def read() -> list[views.AccountLine]:
        with state.engine.connect() as conn:
            activity = rollup.last_activity(conn)
        return views.account_lines(state.engine, activity)

    context.setdefault("form", {"name": "", "credits": ""})
    return _page(request, "operator/accounts.html", status, accounts=await run_in_threadpool(read), **context)


async def accounts_page(request: Request) -> Response:
    await require_operator(request)
    return await _accounts_page(request, message=views.DONE.get(request.query_params.get("done") or ""))


async def _form(request: Request) -> dict[str, str]:
    """The POSTed form's text fields, once its CSRF token matched the session's (else the 403 page is raised)."""
    form = await checked_form(request, session_of(request))
    return {key: value for key, value in form.items() if isinstance(value, str)}


async def create_account(request: Request) -> Response:
    await require_operator(request)
    form = await _form(request)
    state = _state(request)
    name, credits = form.get("name", ""), form.get("credits", "")
    try:
        created = await run_in_threadpool(views.create_account, state.engine, name, credits)
    except Exception as exc:
        if (sentence := views.refusal(exc)) is None:
            raise
        return await _accounts_page(request, 400, error=sentence, form={"name": name, "credits": credits})
    await _changed(state)
    account = await run_in_threadpool(views.account_named, state.engine, created.name)
    log.info("console: operator created account %s", created.name)
    return _page(request, "operator/created.html", 201, created=created, account=account)


async def top_up(request: Request) -> Response:
    await require_operator(request)
    form = await _form(request)
    state = _state(request)
    name = form.get("name", "")
    try:
        await run_in_threadpool(views.top_up, state.engine, name, form.get("amount", ""), form.get("note", ""))
    except Exception as exc:
        if (sentence := views.refusal(exc)) is None:
            raise
        return await _accounts_page(request, 400, error=sentence)
    await _changed(state)
    return redirect(request, "/console/operator/accounts?done=top-up")


async def _set_enabled(request: Request, enabled: bool) -> Response:
    await require_operator(request)
    form = await _form(request)
    state = _state(request)
    try:
        await run_in_threadpool(views.set_enabled, state.engine, form.get("name", ""), enabled)
    except Exception as exc:
        if (sentence := views.refusal(exc)) is None:
            raise
        return await _accounts_page(request, 400, error=sentence)
    await _changed(state)
    return redirect(request, f"/console/operator/accounts?done={'enabled' if enabled else 'disabled'}")


async def disable(request: Request) -> Response:
    return await _set_enabled(request, False)


async def enable(request: Request) -> Response:
    return await _set_enabled(request, True)


async def _changed(state: AppState) -> None:
    """This worker's account cache sees the change at once (others poll), as after an admin API change."""
    try:
        await state.accounts.refresh()
    except Exception as exc:  # committed already: the cache's own poll catches up
        log.warning("could not refresh the account cache after a console change: %s", exc)


# ------------------------------------------------------------------------------------------ sources


async def sources_page(request: Request) -> Response:
    await require_operator(request)
    state = _state(request)
    rows = await run_in_threadpool(views.source_days, state.engine, SOURCE_DAYS)
    now = views.sources_now(state.live, state.metrics, state.settings)
    return _page(
        request,
        "operator/sources.html",
        now=now,
        rows=rows,
        totals=views.source_totals(rows),
        days=SOURCE_DAYS,
        pid=os.getpid(),
    )


# ------------------------------------------------------------------------------------------ data


def _coverage(request: Request) -> dict[str, Any]:
    """The coverage table if this process has it; else its computation is started, once, in the CPU process.

    The worker's CPU process (the jobs' one, niced) computes it, so the seconds
    of CPU it takes do not hold the event loop's interpreter lock.
    """
    state = _state(request)
    cache = views.COVERAGE
    if cache.get() is None and cache.claim():
        task = asyncio.create_task(_compute_coverage(state))
        _computing.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(_computing.discard)
    return {"coverage": cache.get(), "coverage_error": cache.error}


_computing: set[asyncio.Task[None]] = set()


async def _compute_coverage(state: AppState) -> None:
    try:
        views.COVERAGE.done(await state.jobs_cpu.run(views.coverage_table))
    except Exception as exc:
        log.exception("computing the coverage table failed")
        views.COVERAGE.failed(str(exc) or type(exc).__name__)


async def data_page(request: Request) -> Response:
    await require_operator(request)
    state = _state(request)
    versions = await run_in_threadpool(views.dataset_versions, state.engine)
    serving = {kind: state.resolver.operator.versions.get(kind) for kind in KINDS}
    return _page(request, "operator/data.html", versions=versions, serving=serving, **_coverage(request))


async def coverage_fragment(request: Request) -> Response:
    """htmx polls this until the table is there; it then replaces the placeholder and the polling ends."""
    await require_operator(request)
    return _page(request, "operator/coverage.html", **_coverage(request))


# ------------------------------------------------------------------------------------------ nodes


async def nodes_page(request: Request) -> Response:
    await require_operator(request)
    state = _state(request)
    now = datetime.now(UTC)

    def read() -> list[views.NodeLine]:
        with state.engine.connect() as conn:
            return views.node_lines(
                nodes.recent_nodes(conn, now - NODES_WINDOW), now, socket.gethostname(), os.getpid()
            )

    return _page(request, "operator/nodes.html", nodes=await run_in_threadpool(read), window="hour")


async def accounts(request: Request) -> Response:
    """One route for the path, so a 405 names both methods."""
    return await (create_account(request) if request.method == "POST" else accounts_page(request))


OPERATOR_ROUTES: list[BaseRoute] = [
    Route("/operator", page(home), methods=["GET"]),
    Route("/operator/traffic.json", page(traffic_json), methods=["GET"]),
    Route("/operator/accounts", page(accounts), methods=["GET", "POST"]),
    Route("/operator/accounts/top-up", page(top_up), methods=["POST"]),
    Route("/operator/accounts/disable", page(disable), methods=["POST"]),
    Route("/operator/accounts/enable", page(enable), methods=["POST"]),
    Route("/operator/sources", page(sources_page), methods=["GET"]),
    Route("/operator/data", page(data_page), methods=["GET"]),
    Route("/operator/data/coverage", page(coverage_fragment), methods=["GET"]),
    Route("/operator/nodes", page(nodes_page), methods=["GET"]),
]
