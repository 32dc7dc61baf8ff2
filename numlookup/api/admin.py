"""``POST /admin/v1/datasets/{ranges|ported}``: dataset imports over HTTP, for operators' pipelines.

The body is the file itself; ``format``, ``delta`` and ``skip_invalid`` are query
parameters. It runs the very import the CLI runs, so the same validation, the
same atomic swap, the same report. Authentication is a bearer token from the
``admin_token`` setting; with no token set, the endpoint does not exist.
"""

from __future__ import annotations

import hmac
import tempfile

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from numlookup.api.errors import ApiError, ErrorCode, invalid_parameters, not_found
from numlookup.api.state import AppState
from numlookup.datasets import sources
from numlookup.datasets.catalog import dataset_kind
from numlookup.datasets.follower import refresh
from numlookup.datasets.formats import FormatError
from numlookup.datasets.importer import ImportFailed, ImportReport, import_dataset, line_errors

_encoder = msgspec.json.Encoder()
_TRUE = ("1", "true", "yes")


def _check_token(request: Request, token: str) -> None:
    if not token:
        raise not_found(request.method, request.url.path)
    presented = request.headers.get("authorization", "")
    scheme, _, value = presented.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
        raise ApiError(
            401,
            ErrorCode.UNAUTHORIZED,
            "Admin endpoints need 'Authorization: Bearer <admin_token>'.",
            {"WWW-Authenticate": 'Bearer realm="numlookup-admin"'},
        )


async def import_dataset_route(request: Request) -> Response:
    state: AppState = request.app.state.numlookup
    _check_token(request, state.settings.admin_token)
    kind = dataset_kind(request.path_params["kind"])
    if kind is None:
        raise not_found(request.method, request.url.path)
    try:
        fmt = sources.source_format(request.query_params.get("format", "csv"))
    except FormatError:
        raise invalid_parameters(f"format must be one of {', '.join(sources.FORMATS)}.") from None
    if fmt == "kamailio":
        raise invalid_parameters("kamailio imports need their carrier map file: use `numlookup data import-*`.")
    delta = request.query_params.get("delta", "").lower() in _TRUE
    skip_invalid = request.query_params.get("skip_invalid", "").lower() in _TRUE

    with tempfile.TemporaryFile() as spool:
        async for chunk in request.stream():
            spool.write(chunk)
        spool.seek(0)

        def run() -> ImportReport:
            report = import_dataset(
                state.engine,
                state.settings.data_path,
                kind,
                sources.records(kind, fmt, spool, delta=delta),
                source=f"http upload ({request.headers.get('content-length', '?')} bytes)",
                fmt=fmt,
                delta=delta,
                skip_invalid=skip_invalid,
                publish=state.settings.publishes_datasets,
            )
            refresh(state.resolver, state.engine, state.settings.data_path)  # this worker serves it at once
            return report

        try:
            report = await run_in_threadpool(run)
        except (ImportFailed, FormatError) as exc:
            errors = line_errors(getattr(exc, "errors", []))
            error = invalid_parameters(str(exc))
            body = {**msgspec.to_builtins(error.body()), "lines": errors}
            return Response(_encoder.encode(body), status_code=400, media_type="application/json")
    return Response(_encoder.encode(report.as_dict()), media_type="application/json")
