"""``/admin/v1/accounts…``: the CLI's ``numlookup accounts`` over HTTP, through the same service functions.

Every change answers with the account as it now is (a new secret with it, once),
after its transaction committed and this worker's account cache saw it.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

import msgspec
from sqlalchemy import Engine
from starlette.requests import Request
from starlette.responses import Response

from numlookup.accounts import service
from numlookup.api.admin.calls import NO_STORE, body, call, changed, respond
from numlookup.api.admin.token import admin_state
from numlookup.api.admin.wire import (
    AccountList,
    AccountWithSecret,
    Cidr,
    NetworkEntry,
    NewAccount,
    NewPrice,
    NewStatusStyle,
    account_view,
)
from numlookup.api.errors import invalid_parameters
from numlookup.api.state import AppState
from numlookup.billing.money import parse_amount


def _name(request: Request) -> str:
    name: str = request.path_params["name"]
    return name


async def list_accounts(request: Request) -> Response:
    state = admin_state(request)
    found = await call(service.list_accounts, state.engine)
    return respond(AccountList(accounts=[account_view(a) for a in found]))


def _create(engine: Engine, new: NewAccount) -> tuple[service.Account, service.NewCredentials]:
    created = service.create_account(
        engine,
        new.name,
        credits=parse_amount(new.credits),
        allow=new.allowed_networks,
        status_style=new.status_style,
        price=None if new.price is None else parse_amount(new.price),
    )
    return service.get_account(engine, created.name), created


async def create_account(request: Request) -> Response:
    state = admin_state(request)
    new = await body(request, NewAccount)
    account, created = await call(_create, state.engine, new)
    await changed(state)
    return respond(
        AccountWithSecret(account=account_view(account), api_password=created.api_password),
        201,
        # Percent-encoded: a header is Latin-1, a name may be any text.
        {**NO_STORE, "Location": f"/admin/v1/accounts/{quote(account.name, safe='')}"},
    )


async def show_account(request: Request) -> Response:
    state = admin_state(request)
    return respond(account_view(await call(service.get_account, state.engine, _name(request))))


def _then_show(engine: Engine, name: str, change: Callable[[], object]) -> service.Account:
    change()
    return service.get_account(engine, name)


async def _change(state: AppState, request: Request, change: Callable[[Engine, str], object]) -> Response:
    """Run ``change(engine, name)``; answer with the account as it is after it."""
    name = _name(request)
    account = await call(_then_show, state.engine, name, lambda: change(state.engine, name))
    await changed(state)
    return respond(account_view(account))


async def disable_account(request: Request) -> Response:
    return await _change(admin_state(request), request, lambda engine, name: service.set_enabled(engine, name, False))


async def enable_account(request: Request) -> Response:
    return await _change(admin_state(request), request, lambda engine, name: service.set_enabled(engine, name, True))


async def set_price(request: Request) -> Response:
    state = admin_state(request)  # the token before the body, always
    price = (await body(request, NewPrice)).price
    return await _change(
        state,
        request,
        lambda engine, name: service.set_price(engine, name, None if price is None else parse_amount(price)),
    )


async def set_status_style(request: Request) -> Response:
    state = admin_state(request)
    style = (await body(request, NewStatusStyle)).status_style
    return await _change(state, request, lambda engine, name: service.set_status_style(engine, name, style))


async def allow_network(request: Request) -> Response:
    state = admin_state(request)
    cidr = (await body(request, NetworkEntry)).cidr
    return await _change(state, request, lambda engine, name: service.allow_network(engine, name, cidr))


async def deny_network(request: Request) -> Response:
    """``DELETE …/allowed-networks?cidr=10.0.0.0/8``: a query parameter, since a CIDR holds a '/'."""
    state = admin_state(request)
    given = request.query_params.get("cidr")
    if given is None:
        raise invalid_parameters("Name the network to remove: ?cidr=10.0.0.0/8.")
    try:
        cidr = msgspec.convert(given, Cidr)
    except msgspec.ValidationError:
        raise invalid_parameters(f"{given!r} is not a network in CIDR notation.") from None
    return await _change(state, request, lambda engine, name: service.deny_network(engine, name, cidr))


def _rotate(engine: Engine, name: str) -> tuple[service.Account, service.NewCredentials]:
    rotated = service.rotate_secret(engine, name)
    return service.get_account(engine, name), rotated


async def rotate_secret(request: Request) -> Response:
    """A new secret, in this response only; the old one is refused at once by this worker, by others within
    ``account_refresh_seconds``."""
    state = admin_state(request)
    account, rotated = await call(_rotate, state.engine, _name(request))
    await changed(state)
    return respond(AccountWithSecret(account=account_view(account), api_password=rotated.api_password), 200, NO_STORE)
