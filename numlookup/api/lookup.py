"""``POST /v1/hlr/sync``: authenticate, validate, resolve, charge, answer.

The order of checks is the contract's: credentials first (101), then the body
(102, 103), then credits (104). Nothing is charged unless every check passed, and
the 200 leaves only after the charge and its ledger row are committed.
"""

from __future__ import annotations

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from numlookup.accounts import authenticate
from numlookup.api.auth import basic_credentials, client_ip
from numlookup.api.errors import invalid_parameters, no_credits, too_many_numbers, unauthorized
from numlookup.api.state import AppState
from numlookup.api.wire import LookupSuccess, NumbersToInvestigate, number_result
from numlookup.billing import InsufficientCredits, charge, format_amount

_decoder = msgspec.json.Decoder(NumbersToInvestigate)
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
    account = await run_in_threadpool(authenticate, state.engine, *presented, client_ip(request))
    if account is None:
        raise unauthorized()

    _check_content_type(request)
    body = _decode(await request.body())
    limit = state.settings.max_numbers_per_request
    if not body.numbers:
        raise invalid_parameters("`numbers` must hold at least one number.")
    if len(body.numbers) > limit:
        raise too_many_numbers(len(body.numbers), limit)

    resolutions = state.resolver.resolve(body.numbers)
    chargeable = len({r.e164 for r in resolutions if r.valid})
    if chargeable:
        price = state.default_price if account.price is None else account.price
        amount = price * chargeable
        try:
            await run_in_threadpool(charge, state.engine, account.id, request_id, amount, chargeable)
        except InsufficientCredits as exc:
            raise no_credits(format_amount(exc.balance), format_amount(exc.amount)) from None

    style = account.status_style or state.settings.status_style
    success = LookupSuccess(request_id=request_id, result=[number_result(r, style) for r in resolutions])  # type: ignore[arg-type]
    return Response(_encoder.encode(success), media_type="application/json")
