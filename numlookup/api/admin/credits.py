"""``/admin/v1/accounts/{name}/credits|adjustments|ledger``: top-ups, corrections and the ledger.

A top-up and a correction each answer after their ledger row is committed, with
that row and the balance it left. The ledger is paged by row id, newest first:
``limit`` rows (default 50, at most 1000), and ``before=<id>`` for the rows older
than that one; a page says the ``before`` of the next, or null at the end. Row
ids only grow, so a page never shifts while new charges arrive.
"""

from __future__ import annotations

from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import Response

from numlookup.accounts import service
from numlookup.api.admin.calls import body, call, changed, respond
from numlookup.api.admin.token import admin_state
from numlookup.api.admin.wire import Adjustment, Booked, LedgerPage, TopUp, entry_view
from numlookup.api.errors import invalid_parameters
from numlookup.billing import ledger_rows
from numlookup.billing.ledger import Charge
from numlookup.billing.money import format_amount, parse_amount, parse_signed_amount

DEFAULT_PAGE = 50
MAX_PAGE = 1000
# The largest row id the ledger's column holds on every backend (an INTEGER, 32 bits on
# PostgreSQL, which refuses a larger operand): the most ``before`` can be.
MAX_ID = 2**31 - 1


def _booked(engine: Engine, name: str, charge: Charge) -> Booked:
    [row] = ledger_rows(engine, service.get_account(engine, name).id, 1, before=charge.ledger_id + 1)
    return Booked(name=name, balance=format_amount(charge.balance_after), entry=entry_view(row))


def _top_up(engine: Engine, name: str, top_up: TopUp) -> Booked:
    return _booked(engine, name, service.top_up(engine, name, parse_amount(top_up.amount), top_up.note))


def _adjust(engine: Engine, name: str, adjustment: Adjustment) -> Booked:
    amount = parse_signed_amount(adjustment.amount)
    return _booked(engine, name, service.correct(engine, name, amount, adjustment.note))


async def top_up(request: Request) -> Response:
    state = admin_state(request)
    given = await body(request, TopUp)
    booked = await call(_top_up, state.engine, request.path_params["name"], given)
    await changed(state)
    return respond(booked)


async def adjust(request: Request) -> Response:
    """A correction, either way, with its required note; 409 with nothing changed if it would go below zero."""
    state = admin_state(request)
    given = await body(request, Adjustment)
    booked = await call(_adjust, state.engine, request.path_params["name"], given)
    await changed(state)
    return respond(booked)


def _whole(request: Request, key: str, low: int, high: int, default: int | None) -> int | None:
    text = request.query_params.get(key)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit() and len(text) <= 10 and low <= int(text) <= high):
        raise invalid_parameters(f"`{key}` must be a whole number from {low} to {high} (got {text!r}).")
    return int(text)


def _page(engine: Engine, name: str, limit: int, before: int | None) -> LedgerPage:
    account = service.get_account(engine, name)
    rows = ledger_rows(engine, account.id, limit + 1, before=before)  # one more: is there a next page?
    shown = rows[:limit]
    return LedgerPage(
        name=account.name,
        balance=format_amount(account.balance),
        entries=[entry_view(r) for r in shown],
        next_before=shown[-1].id if len(rows) > limit else None,
    )


async def ledger(request: Request) -> Response:
    state = admin_state(request)
    limit = _whole(request, "limit", 1, MAX_PAGE, DEFAULT_PAGE)
    assert limit is not None
    before = _whole(request, "before", 1, MAX_ID, None)
    return respond(await call(_page, state.engine, request.path_params["name"], limit, before))
