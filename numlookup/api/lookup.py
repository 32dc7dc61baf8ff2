"""``POST /v1/hlr/sync``: authenticate, validate, resolve, charge, answer.

The order of checks is the contract's: credentials first (101), then the body
(102, 103), then credits (104). Nothing is charged unless every check passed, and
the 200 leaves only after the charge and its ledger row are committed.

With live sources, the numbers they serve are asked (or found in the cache)
between the checks and the charge, because the price depends on the answer's
class: live, cache hit, or offline (a live query that failed is an offline
answer). The charge is still one transaction with one ledger row per request,
for the sum.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from numlookup.api.auth import basic_credentials, client_ip
from numlookup.api.errors import invalid_parameters, no_credits, too_many_numbers, unauthorized
from numlookup.api.state import AppState
from numlookup.api.wire import LookupSuccess, NumbersToInvestigate, iso_time, number_result
from numlookup.billing import InsufficientCredits, format_amount
from numlookup.billing.money import MICROS
from numlookup.live.service import LiveResult

_decoder = msgspec.json.Decoder(NumbersToInvestigate)
# Status words of every style, as the metrics count them.
_OUTCOME = {
    "ONLINE": "online",
    "ON": "online",
    "true": "online",
    "OFFLINE": "offline",
    "OFF": "offline",
    "false": "offline",
    "UNKNOWN": "unknown",
    "INVALID": "invalid",
}
_encoder = msgspec.json.Encoder()


def _check_content_type(request: Request) -> None:
    content_type = request.headers.get("content-type", "")
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        shown = content_type or "none"
        raise invalid_parameters(f"Content-Type must be application/json (got {shown}).")


def _decode(body: bytes) -> NumbersToInvestigate:
    if not body.strip():
        raise invalid_parameters('The request body is missing; send {"numbers": ["+37251000001"]}.')
    try:
        return _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise invalid_parameters(f"The request body is wrong: {exc}.") from None
    except msgspec.DecodeError as exc:
        raise invalid_parameters(f"The request body is not valid JSON: {exc}.") from None


async def lookup(request: Request) -> Response:
    state: AppState = request.app.state.numlookup
    request_id: str = request.state.request_id

    presented = basic_credentials(request)
    if presented is None:
        raise unauthorized()
    account = await state.accounts.authenticate(*presented, client_ip(request))
    if account is None:
        raise unauthorized()
    request.state.account = account.name  # for the request log (RequestIdMiddleware)

    _check_content_type(request)
    body = _decode(await request.body())
    limit = state.settings.max_numbers_per_request
    if not body.numbers:
        raise invalid_parameters("`numbers` must hold at least one number.")
    if len(body.numbers) > limit:
        raise too_many_numbers(len(body.numbers), limit)

    resolutions = await state.coalescer.resolve(body.numbers)
    checked_at = iso_time(datetime.now(UTC))
    valid = {r.e164: r for r in resolutions if r.valid and r.e164 is not None}  # a number listed twice counts once
    live: dict[str, LiveResult] = {}
    if state.live is not None and valid:
        routed = state.live.routes(list(valid.values()))
        if routed:
            # Before any source is asked (an upstream costs us money): can the account pay the dearest outcome?
            worst = sum(
                state.most_price(account.price) if e164 in routed else state.price("offline", account.price)
                for e164 in valid
            )
            if account.balance < worst:
                raise no_credits(format_amount(account.balance), format_amount(worst))
            live = await state.live.lookup(list(valid.values()), body.max_age, body.deadline)

    if valid:
        amount = sum(
            state.price(live[e164].charge_class if e164 in live else "offline", account.price) for e164 in valid
        )
        # Fresh live answers go into the cache in the charge's own transaction: no extra commit.
        rows = state.live.cache_rows(live) if state.live is not None else []
        assert state.charger is not None
        try:
            charge = await state.charger.charge(account.id, request_id, amount, len(valid), rows)
        except InsufficientCredits as exc:
            state.accounts.note_balance(presented[0], exc.balance)
            raise no_credits(format_amount(exc.balance), format_amount(exc.amount)) from None
        state.accounts.note_balance(presented[0], charge.balance_after)
        if state.metrics is not None:
            state.metrics.credits_spent.inc(amount / MICROS)  # a measure of use, not money: a float is fine here

    style = account.status_style or state.settings.status_style
    result = [number_result(r, style, checked_at, live.get(r.e164) if r.e164 else None) for r in resolutions]  # type: ignore[arg-type]
    if state.metrics is not None:
        for item in result:
            state.metrics.lookups.labels(_OUTCOME.get(item.status, "unknown"), item.source).inc()
    return Response(_encoder.encode(LookupSuccess(request_id=request_id, result=result)), media_type="application/json")
