"""The lookup box: numbers typed in, the API's own answer shown as a table and as its raw JSON.

The box's numbers become the body ``POST /v1/hlr/sync`` would get
(``{"numbers": [...]}``), checked by the API's own decoder and limits, and
answered by ``api.lookup.lookup_for``: the same resolution, quote, live
lookups, charge and ledger row as an API call, so the console can neither
under- nor over-charge. Each form carries a fresh idempotency key, so sending
the same form twice (a reload, a double click) replays the first answer
instead of charging again, as an API client's retry with its key would.
"""

from __future__ import annotations

import json
import uuid

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from numlookup.api.console.guards import api_work_form, require_account
from numlookup.api.console.pages import render
from numlookup.api.errors import ApiError
from numlookup.api.lookup import decode_numbers, lookup_for
from numlookup.api.state import AppState

HEADINGS = ("Number", "Status", "Network", "MCC/MNC", "Country", "Ported", "Roaming", "Source")


def _numbers(text: str) -> list[str]:
    """One number a line (commas and semicolons too): what a person pastes."""
    return [part.strip() for line in text.splitlines() for part in line.replace(";", ",").split(",") if part.strip()]


async def lookup_page(request: Request) -> Response:
    await require_account(request)
    state: AppState = request.app.state.numlookup
    return render(
        request, "lookup.html", title="Lookup", limit=state.settings.max_numbers_per_request, key=str(uuid.uuid4())
    )


async def run_lookup(request: Request) -> Response:
    _, account, form = await api_work_form(request)
    state: AppState = request.app.state.numlookup
    text = str(form.get("numbers", ""))
    key = str(form.get("idempotency_key", "")) or None
    raw = msgspec.json.encode({"numbers": _numbers(text)})
    limit = state.settings.max_numbers_per_request
    try:
        body = decode_numbers(raw, limit)
        answer = await lookup_for(request, state, account.api_username, account, raw, body, key)
        status, payload = answer.status_code, bytes(answer.body)
    except ApiError as exc:
        status, payload = exc.http_status, msgspec.json.encode(exc.body())
    decoded = json.loads(payload)
    error = None if status == 200 else decoded["error"]["description"]
    results = decoded.get("result", [])
    rows = [_row(item) for item in results]
    return render(
        request,
        "lookup.html",
        200 if status == 200 else (status if status != 401 else 400),
        title="Lookup",
        limit=limit,
        key=str(uuid.uuid4()),
        numbers=text,
        error=error,
        headings=HEADINGS,
        rows=rows,
        raw=json.dumps(decoded, indent=2, ensure_ascii=False),
        request_id=decoded.get("request_id"),
    )


def _row(item: dict[str, object]) -> list[str]:
    """A result object's table row: the current network's name, MCC/MNC and country, the flags, the source."""
    network = item.get("currentNetwork") or {}
    assert isinstance(network, dict)
    return [
        str(item.get("number", "")),
        str(item.get("status", "")) + (f" ({item['error']})" if item.get("error") else ""),
        str(network.get("networkName") or ""),
        str(network.get("mccmnc") or ""),
        str(network.get("countryName") or ""),
        _flag(item.get("ported")),
        _flag(item.get("roaming")),
        str(item.get("source", "")),
    ]


def _flag(value: object) -> str:
    return "" if value is None else ("yes" if value else "no")
