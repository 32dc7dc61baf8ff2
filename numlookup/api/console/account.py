"""The account holder's overview: balance, what jobs hold of it, prices per answer class, charts of usage.

Every figure is the session's account's, read for this request (the guard reads
the account afresh); the charts' data come from ``usage.json`` (``billing.rollup``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from numlookup.api.console.guards import require_account
from numlookup.api.console.pages import render
from numlookup.api.state import AppState
from numlookup.billing import format_amount
from numlookup.billing.prices import CHARGE_CLASSES

RANGES = ("24h", "30d", "90d")


async def overview(request: Request) -> Response:
    user = await require_account(request)
    state: AppState = request.app.state.numlookup
    account = user.account
    assert account is not None
    chosen = request.query_params.get("range", "30d")
    if chosen not in RANGES:
        chosen = "30d"
    prices = [
        (charge_class, format_amount(state.prices.of(charge_class, account.price))) for charge_class in CHARGE_CLASSES
    ]
    return render(
        request,
        "account.html",
        title="Overview",
        account=account,
        balance=format_amount(account.balance),
        reserved=format_amount(account.reserved),
        spendable=format_amount(account.spendable),
        prices=prices,
        style=account.status_style or f"server default ({state.settings.status_style})",
        ranges=RANGES,
        chosen=chosen,
    )
