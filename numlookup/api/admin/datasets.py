"""``POST /admin/v1/datasets/{ranges|ported}``: dataset imports over HTTP, for operators' pipelines.

The body is the file itself; ``format``, ``delta`` and ``skip_invalid`` are query
parameters. It runs the very import the CLI runs, so the same validation, the
same atomic swap, the same report. Authentication is the admin API's bearer
token (``token.py``). ``delta`` and ``skip_invalid`` take 1/true/yes or 0/false/no:
anything else is a 400, since a misspelt ``delta`` read as "no" would replace the
whole dataset with what was meant as a change to it.
"""

from __future__ import annotations

import tempfile

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from numlookup.api.admin.token import admin_state
from numlookup.api.errors import invalid_parameters, not_found
from numlookup.datasets import sources
from numlookup.datasets.catalog import dataset_kind
from numlookup.datasets.follower import refresh
from numlookup.datasets.formats import FormatError
from numlookup.datasets.importer import ImportFailed, ImportReport, import_dataset, line_errors

_encoder = msgspec.json.Encoder()
# kamailio files need their carrier map file beside them: the CLI only.
HTTP_FORMATS = tuple(f for f in sources.FORMATS if f != "kamailio")
FLAGS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def _flag(request: Request, key: str) -> bool:
    text = request.query_params.get(key, "0")
    value = FLAGS.get(text.lower())
    if value is None:
        raise invalid_parameters(f"`{key}` must be one of {', '.join(FLAGS)} (got {text!r}).")
    return value


async def import_dataset_route(request: Request) -> Response:
    state = admin_state(request)
    kind = dataset_kind(request.path_params["kind"])
    if kind is None:
        raise not_found(request.method, request.url.path)
    try:
        fmt = sources.source_format(request.query_params.get("format", "csv"))
    except FormatError:
        raise invalid_parameters(f"format must be one of {', '.join(sources.FORMATS)}.") from None
    if fmt == "kamailio":
        raise invalid_parameters("kamailio imports need their carrier map file: use `numlookup data import-*`.")
    delta = _flag(request, "delta")
    skip_invalid = _flag(request, "skip_invalid")

    with tempfile.TemporaryFile() as spool:
        async for chunk in request.stream():
            spool.write(chunk)
        spool.seek(0)

        def run() -> ImportReport:
            report = import_dataset(
                state.engine,
                state.settings.data_path,
                kind,
                sources.import_stream(kind, fmt, spool, delta=delta),
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
