"""How an admin route does its work: decode the body, call the service in a thread, answer or refuse.

The routes call the very functions the CLI calls (``accounts``, ``billing``);
this module only carries them over HTTP. A refusal of the service becomes the
wire's error body here, in one place: what names something absent is 404, what
contradicts what is stored (a name taken, a correction below zero) 409, any
other bad input 400. Each refusal comes before anything changed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from numlookup.accounts import AccountConflict, AccountError, NotFound, UnknownAccount
from numlookup.accounts.allowlist import AllowListError
from numlookup.api.errors import conflict, invalid_parameters, missing, unknown_account
from numlookup.api.state import AppState
from numlookup.billing import BelowZero, LedgerError
from numlookup.billing.money import AmountError
from numlookup.status import UnknownStyle

log = logging.getLogger("numlookup.api")
P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
_encoder = msgspec.json.Encoder()
_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}
# A new secret must not stay in a cache between the server and whoever asked for it.
NO_STORE = {"Cache-Control": "no-store"}


def _sentence(exc: Exception) -> str:
    text = str(exc)
    return f"{text[:1].upper()}{text[1:]}."


async def call(function: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """``function`` in a worker thread (it talks to the database); its refusals as the wire's errors."""
    try:
        return await run_in_threadpool(function, *args, **kwargs)
    except UnknownAccount as exc:
        raise unknown_account(exc.name) from None
    except NotFound as exc:
        raise missing(_sentence(exc)) from None
    except (AccountConflict, BelowZero) as exc:
        raise conflict(_sentence(exc)) from None
    except (AccountError, AllowListError, AmountError, UnknownStyle, LedgerError) as exc:
        raise invalid_parameters(_sentence(exc)) from None


async def changed(state: AppState) -> None:
    """Let this worker's account cache see a change at once (others poll: ``account_refresh_seconds``).

    The change is committed: a failure here must not turn its answer into an
    error, so it is only logged, and the cache's own poll catches up.
    """
    try:
        await state.accounts.refresh()
    except Exception as exc:
        log.warning("could not refresh the account cache after an admin change: %s", exc)


async def body(request: Request, kind: type[T]) -> T:
    """The request's JSON body as ``kind``: 400 for a wrong Content-Type, no body, bad JSON or a bad field."""
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() != "application/json":
        raise invalid_parameters(f"Content-Type must be application/json (got {content_type or 'none'}).")
    raw = await request.body()
    if not raw.strip():
        raise invalid_parameters("The request body is missing; send a JSON object.")
    decoder = _decoders.get(kind)
    if decoder is None:
        decoder = _decoders[kind] = msgspec.json.Decoder(kind)
    try:
        decoded: T = decoder.decode(raw)
    except msgspec.ValidationError as exc:
        raise invalid_parameters(f"The request body is wrong: {exc}.") from None
    except msgspec.DecodeError as exc:
        raise invalid_parameters(f"The request body is not valid JSON: {exc}.") from None
    return decoded


def respond(value: msgspec.Struct, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(_encoder.encode(value), status_code=status, media_type="application/json", headers=headers)
