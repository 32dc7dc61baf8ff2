"""The Starlette application: routes, error rendering and start-up.

``create_app`` is a factory so every uvicorn worker process builds its own engine
and loads its own numbering data.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from numlookup.api.admin import import_dataset_route
from numlookup.api.errors import ApiError, ErrorCode, method_not_allowed, not_found, server_error
from numlookup.api.lookup import lookup
from numlookup.api.openapi import openapi_document
from numlookup.api.request_id import RequestIdMiddleware
from numlookup.api.state import AppState, Prices
from numlookup.billing.charger import GroupCharger
from numlookup.billing.money import to_micros
from numlookup.datasets.follower import follow, load_operator_data
from numlookup.live.metrics import CONTENT_TYPE, LiveMetrics
from numlookup.live.service import LiveService
from numlookup.numbering import Resolver
from numlookup.numbering.resolver import shared_engine
from numlookup.settings import Settings, get_settings
from numlookup.store import make_engine

log = logging.getLogger("numlookup.api")
_encoder = msgspec.json.Encoder()


def error_response(error: ApiError) -> Response:
    return Response(
        _encoder.encode(error.body()), status_code=error.http_status, media_type="application/json", headers=error.headers
    )


async def _api_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(not_found(request.method, request.url.path))
    if exc.status_code == 405:
        return error_response(method_not_allowed(request.method, request.url.path))
    return error_response(ApiError(exc.status_code, ErrorCode.INVALID_PARAMETERS, str(exc.detail)))


async def _server_error(request: Request, exc: Exception) -> Response:
    """Runs outside the request-id middleware (Starlette's outermost layer), so it stamps the id itself."""
    request_id = request.scope.get("state", {}).get("request_id", "")
    log.error("unhandled error in request %s", request_id, exc_info=exc)
    response = error_response(server_error())
    response.headers["X-Request-Id"] = request_id
    return response


async def healthz(_request: Request) -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or get_settings()
    document = _encoder.encode(openapi_document(settings.max_numbers_per_request))

    async def openapi(_request: Request) -> Response:
        return Response(document, media_type="application/json")

    engine = make_engine(settings.effective_database_url, sqlite_synchronous=settings.sqlite_synchronous)
    resolver = Resolver(operator=load_operator_data(engine, settings.data_path), engine=shared_engine(settings.data_path / "cache"))
    metrics = LiveMetrics()
    offline_price = to_micros(settings.offline_price)
    state = AppState(
        settings=settings,
        engine=engine,
        resolver=resolver,
        default_price=offline_price,
        prices=Prices(
            offline=offline_price,
            cache=None if settings.price_cache is None else to_micros(settings.price_cache),
            live=None if settings.price_live is None else to_micros(settings.price_live),
        ),
        live=LiveService.from_settings(settings, engine, resolver, metrics),
        metrics=metrics,
        charger=GroupCharger(engine, enabled=settings.group_commit, on_batch=metrics.charge_batch.observe),
    )

    async def metrics_route(_request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        follower = asyncio.create_task(
            follow(state.resolver, engine, settings.data_path, settings.dataset_poll_seconds)
        )
        yield
        follower.cancel()
        if state.live is not None:
            await state.live.close()
        state.engine.dispose()

    app = Starlette(
        routes=[
            Route("/v1/hlr/sync", lookup, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            Route("/metrics", metrics_route, methods=["GET"]),
            Route("/admin/v1/datasets/{kind}", import_dataset_route, methods=["POST"]),
        ],
        middleware=[Middleware(RequestIdMiddleware)],
        exception_handlers={ApiError: _api_error, HTTPException: _http_error, Exception: _server_error},
        lifespan=lifespan,
    )
    app.state.numlookup = state
    return app
