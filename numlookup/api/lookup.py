"""``POST /v1/hlr/sync``: authenticate, validate, resolve, charge, answer.

It reads in the order of the work: authenticate → decode → idempotency key →
resolve → quote → live → render → charge. The order of checks is the contract's:
credentials first (101), then the body (102, 103), then credits (104). Nothing is
charged unless every check passed, and the 200 leaves only after the charge and
its ledger row are committed. The answer is rendered before the charge so that,
with an ``Idempotency-Key``, the stored response commits in the charge's own
transaction (see ``api.idempotency``): a retry replays it and is not charged.

With live sources, the numbers they serve are asked (or found in the cache)
between the checks and the charge, because the price depends on the answer's
class: live, cache hit, or offline (a live query that failed is an offline
answer). The charge is still one transaction with one ledger row per request,
for the sum.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from functools import lru_cache, partial

import anyio.to_thread
import msgspec
from starlette.requests import Request
from starlette.responses import Response

from numlookup.accounts import Account, AuthFailure
from numlookup.api.auth import client_ip, parse_basic
from numlookup.api.errors import ApiError, invalid_parameters, no_credits, too_many_numbers, unauthorized
from numlookup.api.idempotency import HEADER, Stored
from numlookup.api.nesting import MAX_NESTING, nesting_depth_exceeds
from numlookup.api.state import AppState
from numlookup.api.wire import LookupSuccess, NumbersToInvestigate
from numlookup.billing import InsufficientCredits, format_amount
from numlookup.billing.ledger import Charge, Counts, balances
from numlookup.billing.prices import ChargeClass
from numlookup.live.service import LiveResult
from numlookup.logs import utc_now_iso
from numlookup.numbering.models import Resolution
from numlookup.results import NumberResult, number_result, offline_results
from numlookup.settings import OFFLINE
from numlookup.status import answer_style, outcome, status_word

_decoder = msgspec.json.Decoder(NumbersToInvestigate)
_encoder = msgspec.json.Encoder()
ROUTE = "POST /v1/hlr/sync"  # what an idempotency key's fingerprint names besides the body
JSON = "application/json"


def check_content_type(content_type: str) -> None:
    """102 unless the request's ``Content-Type`` (its first, "" without one) names JSON."""
    if content_type == JSON:
        return  # what nearly every client sends: no split, strip and lower for it
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        shown = content_type or "none"
        raise invalid_parameters(f"Content-Type must be application/json (got {shown}).")


def _decode(body: bytes) -> NumbersToInvestigate:
    if not body.strip():
        raise invalid_parameters('The request body is missing; send {"numbers": ["+37251000001"]}.')
    if nesting_depth_exceeds(body):
        raise invalid_parameters(f"The request body nests arrays and objects more than {MAX_NESTING} levels deep.")
    try:
        return _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise invalid_parameters(f"The request body is wrong: {exc}.") from None
    except msgspec.DecodeError as exc:
        raise invalid_parameters(f"The request body is not valid JSON: {exc}.") from None


async def _authenticate(request: Request, state: AppState) -> tuple[str, Account]:
    """The Basic username and its account; 101 for anything else (no credentials, wrong, disabled, IP).

    Why it was refused goes to the request log only (RequestIdMiddleware), with the
    username presented; the client gets the one 101 whatever the reason.
    """
    username, verdict = await verify_basic(state, request.headers.get("authorization"), client_ip(request))
    if isinstance(verdict, AuthFailure):
        request.state.auth_failure = verdict
        if username is not None:
            request.state.username = username
        raise unauthorized()
    assert username is not None  # an account was found by it
    request.state.account = verdict.name  # for the request log (RequestIdMiddleware)
    return username, verdict


async def verify_basic(
    state: AppState, authorization: str | None, client: str | None
) -> tuple[str | None, Account | AuthFailure]:
    """The username presented (None: none could be read) and its account, or why the credentials were refused.

    From the ``Authorization`` header's value, so the fused edge (``api.sync_edge``),
    which holds no Starlette request, checks credentials exactly as ``_authenticate``.
    """
    if authorization is None:
        return None, AuthFailure.MISSING_CREDENTIALS
    presented = parse_basic(authorization)
    if presented is None:
        return None, AuthFailure.MALFORMED_CREDENTIALS
    username, password = presented
    verdict = state.accounts.known(username, password, client)  # a kept account: nothing to await
    if verdict is None:
        verdict = await state.accounts.read(username, password, client)
    return username, verdict


async def _read_body(request: Request, limit: int) -> tuple[bytes, NumbersToInvestigate]:
    """The body's bytes (an idempotency key's fingerprint covers them) and what they say."""
    check_content_type(request.headers.get("content-type", ""))
    raw = await request.body()
    return raw, decode_numbers(raw, limit)


def decode_numbers(raw: bytes, limit: int) -> NumbersToInvestigate:
    """A request body's numbers, checked as the API checks them (102, 103): the console's lookup box sends these."""
    body = _decode(raw)
    if not body.numbers:
        raise invalid_parameters("`numbers` must hold at least one number.")
    if len(body.numbers) > limit:
        raise too_many_numbers(len(body.numbers), limit)
    return body


def _charge_settled(state: AppState, username: str, amount: int, charge: Charge) -> None:
    """What a committed charge leaves behind: the cached balance, the credits metric (micro-credits, exact)."""
    state.accounts.note_balance(username, charge.balance_after, charge.reserved)
    state.metrics.credits_charged(amount)


def _charge_refused(state: AppState, username: str, exc: InsufficientCredits) -> ApiError:
    """104 for a charge the balance fell short of, the balance it found noted."""
    state.accounts.note_balance(username, exc.balance, exc.reserved)
    return _no_credits(exc.spendable, exc.amount, exc.reserved)


def _counts(
    valid: Mapping[str, object], classes: Mapping[str, ChargeClass], resolutions: Sequence[Resolution]
) -> Counts:
    """The charged numbers by answer class (no live answer: offline), and the distinct invalid inputs."""
    # As many distinct valid numbers as inputs: every input is one of them, none invalid (no set to build).
    invalid = (
        0
        if len(valid) == len(resolutions)
        else len({r.input for r in resolutions if not (r.valid and r.e164 is not None)})
    )
    if not classes:
        return _offline_counts(len(valid), invalid)
    cached = live = 0
    for charge_class in classes.values():
        if charge_class == "cache":
            cached += 1
        elif charge_class == "live":
            live += 1
    return Counts(offline=len(valid) - cached - live, cached=cached, live=live, invalid=invalid)


@lru_cache(maxsize=1024)
def _offline_counts(offline: int, invalid: int) -> Counts:
    """``Counts(offline=offline, invalid=invalid)``, one object per pair: immutable, and nearly every charge's.

    Why: a frozen dataclass is built field by field through ``object.__setattr__``;
    the few pairs a server's requests have are built once.
    """
    return Counts(offline=offline, invalid=invalid)


def _no_credits(spendable: int, amount: int, reserved: int, *, job: bool = False) -> ApiError:
    held = format_amount(reserved) if reserved else None
    return no_credits(format_amount(spendable), format_amount(amount), held, job=job)


async def _can_pay(state: AppState, username: str, account: Account, quote: int) -> None:
    """104 unless the account can pay ``quote``, by the cached balance or, before refusing, the database's.

    Bulk jobs release what they no longer need from other processes, which the
    cache does not hear of: a cached ``spendable`` may be low, never trusted to refuse.
    """
    if account.spendable >= quote:
        return

    def read() -> tuple[int, int]:
        with state.engine.connect() as conn:
            return balances(conn, account.id)

    balance, reserved = await anyio.to_thread.run_sync(read)
    state.accounts.note_balance(username, balance, reserved)
    if balance - reserved < quote:
        raise _no_credits(balance - reserved, quote, reserved)


async def lookup(request: Request) -> Response:
    state: AppState = request.app.state.numlookup
    username, account = await _authenticate(request, state)
    raw, body = await _read_body(request, state.settings.max_numbers_per_request)
    return await lookup_for(request, state, username, account, raw, body)


async def lookup_for(
    request: Request,
    state: AppState,
    username: str,
    account: Account,
    raw: bytes,
    body: NumbersToInvestigate,
    idempotency_key: str | None = None,
) -> Response:
    """The sync lookup of an authenticated account's checked body: key, resolve, quote, live, render, charge.

    ``POST /v1/hlr/sync`` and the console's lookup box both answer through here,
    so a console lookup is charged, booked and replayed exactly as an API call.
    ``idempotency_key`` stands in for the request's ``Idempotency-Key`` header.
    """
    keys = [idempotency_key] if idempotency_key is not None else request.headers.getlist(HEADER)
    answer = await answer_lookup(
        state, username, account, raw, body, request.state.request_id, request.headers.get("user-agent"), keys
    )
    if isinstance(answer, Stored):
        return answer.response()  # a completed request's response, replayed: nothing is charged again
    return Response(answer, media_type=JSON)


async def answer_lookup(
    state: AppState,
    username: str,
    account: Account,
    raw: bytes,
    body: NumbersToInvestigate,
    request_id: str,
    user_agent: str | None,
    idempotency_keys: Sequence[str],
) -> bytes | Stored:
    """``lookup_for`` without a Starlette request: the 200's JSON body, or the stored response a key replays.

    The fused edge (``api.sync_edge``) answers through here with the values it read
    in its one pass over the headers, and writes the bytes itself.

    One coroutine from the claim to the charge (the resolve and the charge are
    awaited as the futures the coalescer and the charger settle): every await of
    a request resumes each coroutine between the loop and the future, and the
    answer and its charge had two of their own.
    """
    # Without the header there is no key (``idempotency.parse_key``): no claim, and no coroutine to ask for none.
    claim = await state.idempotency.claim(account.id, ROUTE, raw, idempotency_keys) if idempotency_keys else None
    if isinstance(claim, Stored):
        return claim  # a completed request's response, replayed: nothing is charged again
    try:
        resolutions = await state.coalescer.resolve(body.numbers)
        checked_at = utc_now_iso()  # iso_time(datetime.now(UTC)), cheaper
        # A number listed twice counts once. (``reason is None`` is ``valid``, without the property's call per number.)
        valid = {r.e164: r for r in resolutions if r.reason is None and r.e164 is not None}

        live: dict[str, LiveResult] = {}
        routed = state.live.routes(list(valid.values())) if state.live is not None and valid else {}
        if routed:
            assert state.live is not None
            # Before any source is asked (an upstream costs us money): can the account pay the dearest outcome?
            quote = state.prices.quote(valid, routed, account.price)
            await _can_pay(state, username, account, quote)
            live = await state.live.lookup(list(valid.values()), body.max_age, body.deadline, routed=routed)

        # An account's own style wins; else the server's, which by default ("auto") follows the client's User-Agent.
        style = answer_style(account.status_style or state.settings.status_style, user_agent)
        if live:
            result = [number_result(r, style, checked_at, live.get(r.e164) if r.e164 else None) for r in resolutions]
            counted = outcomes(result)
        else:
            result, invalid = offline_results(resolutions, style, checked_at)
            counted = offline_outcomes(len(result), invalid)
        encoded = _encoder.encode(LookupSuccess(request_id=request_id, result=result))
        completed = claim.completed(200, {"content-type": JSON}, encoded, request_id) if claim is not None else None

        if valid:
            classes = {number: result.charge_class for number, result in live.items()}
            amount = state.prices.total(valid, classes, account.price)
            # Fresh live answers and their credits by source go into the charge's own transaction: no extra commit;
            # so does the response an idempotency key will replay.
            attached: list[object] = (
                list(state.live.attachment(live, partial(state.prices.of, account_price=account.price)))
                if state.live is not None and live
                else []
            )
            if completed is not None:
                attached.append(completed)
            counts = _counts(valid, classes, resolutions)
            try:
                charge = await state.charger.charge(account.id, request_id, amount, len(valid), attached, counts)
            except InsufficientCredits as exc:
                raise _charge_refused(state, username, exc) from None
            _charge_settled(state, username, amount, charge)
        elif completed is not None:
            await state.idempotency.complete(completed)  # nothing to charge: the response is stored on its own

        state.metrics.lookups_counted(counted)
        return encoded
    except asyncio.CancelledError:
        raise  # its charge may still commit: the key stays held until its lease ends
    except BaseException:
        if claim is not None:
            await state.idempotency.release(claim)  # an error charged nothing: the key may be used again
        raise


def outcomes(result: Sequence[NumberResult]) -> dict[tuple[str, str], int]:
    """The answers by ``(outcome, source)``: what ``numlookup_lookups`` counts of a request.

    Counted by status word first, then classed once per distinct word (a request's
    numbers mostly share one): the pairs made through ``status.outcome`` number by
    number and counted after took 9 µs for ten numbers, this 1 µs (the same
    microbenchmark, run back to back on the shared machine).
    """
    words: dict[tuple[str, str], int] = {}
    for item in result:
        pair = (item.status, item.source)
        words[pair] = words.get(pair, 0) + 1
    counted: dict[tuple[str, str], int] = {}
    for (word, source), count in words.items():
        key = (outcome(word), source)
        counted[key] = counted.get(key, 0) + count
    return counted


_OFFLINE_VALID = (outcome(status_word(True, None, "seed")), OFFLINE)
_OFFLINE_INVALID = (outcome(status_word(False, None, "seed")), OFFLINE)


def offline_outcomes(answered: int, invalid: int) -> dict[tuple[str, str], int]:
    """:func:`outcomes` of a request answered offline only: ``answered`` numbers, ``invalid`` of them invalid.

    An offline answer's word is the same in every style (``UNKNOWN``; ``INVALID``),
    so its pairs are known without reading the results (tests/api/test_outcomes.py
    holds this to :func:`outcomes`).
    """
    counted: dict[tuple[str, str], int] = {}
    if answered > invalid:
        counted[_OFFLINE_VALID] = answered - invalid
    if invalid:
        counted[_OFFLINE_INVALID] = invalid
    return counted
