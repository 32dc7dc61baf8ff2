"""The one owner of wire error codes, HTTP statuses and their descriptions.

Bodies carry both shapes clients expect: the brief's top-level ``error`` and the
official clients' ``errors`` list (see the wire contract).
"""

from __future__ import annotations

from enum import IntEnum

import msgspec
from starlette.responses import Response


class ErrorCode(IntEnum):
    """Messente's codes. 103 means both "too many numbers" (400) and "server error" (500).

    ``CLIENT_ERROR`` (106) answers a client that misbehaves rather than errs in one
    request: too many requests (429) or a body sent too slowly (408). Messente's
    Number Lookup spec defines 101-106 and titles 106 "Client error"; the official
    clients validate ``code`` against exactly that range, so 106 is the one code
    they parse that says "slow down" without claiming the credentials (101), the
    parameters (102) or the server (103) were wrong.
    """

    UNAUTHORIZED = 101
    INVALID_PARAMETERS = 102
    TOO_MANY_NUMBERS = 103
    NO_CREDITS = 104
    SERVER_ERROR = 103  # an alias of TOO_MANY_NUMBERS, told apart by the HTTP status
    CLIENT_ERROR = 106


class ErrorDetail(msgspec.Struct):
    code: int
    description: str


class ErrorItem(msgspec.Struct):
    error: ErrorDetail


class ErrorBody(msgspec.Struct):
    error: ErrorDetail
    errors: list[ErrorItem]


class ApiError(Exception):
    """Raised anywhere below a route; rendered as the wire's error body."""

    def __init__(self, http_status: int, code: int, description: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.http_status = http_status
        self.code = code
        self.description = description
        self.headers = headers or {}

    def body(self) -> ErrorBody:
        detail = ErrorDetail(code=self.code, description=self.description)
        return ErrorBody(error=detail, errors=[ErrorItem(error=detail)])


UNAUTHORIZED_DESCRIPTION = "Access is restricted, wrong credentials or IP not whitelisted."
SERVER_ERROR_DESCRIPTION = "Server error. The request was not charged; please retry later."


def unauthorized() -> ApiError:
    return ApiError(
        401, ErrorCode.UNAUTHORIZED, UNAUTHORIZED_DESCRIPTION, {"WWW-Authenticate": 'Basic realm="numlookup"'}
    )


def invalid_parameters(description: str) -> ApiError:
    return ApiError(400, ErrorCode.INVALID_PARAMETERS, description)


def too_many_numbers(count: int, limit: int) -> ApiError:
    return ApiError(
        400,
        ErrorCode.TOO_MANY_NUMBERS,
        f"Maximum number of numbers for the sync call exceeded: the request has {count}, the limit is {limit}.",
    )


def no_credits(balance: str, needed: str, reserved: str | None = None, *, job: bool = False) -> ApiError:
    """104; ``balance`` is what the account may spend, ``reserved`` (if any) what its bulk jobs hold besides.

    ``job``: a bulk job's submit, which needs ``needed`` reserved (the dearest outcome of its numbers).
    """
    held = f" ({reserved} more is reserved for bulk jobs)" if reserved else ""
    cost = f"the job needs {needed} reserved" if job else f"the request costs {needed}"
    return ApiError(
        402, ErrorCode.NO_CREDITS, f"Not enough credits on the account: {cost}, the balance is {balance}{held}."
    )


def too_many_job_numbers(limit: int) -> ApiError:
    return ApiError(
        400, ErrorCode.TOO_MANY_NUMBERS, f"Maximum number of numbers for a job exceeded: the limit is {limit}."
    )


def job_not_found(job_id: str) -> ApiError:
    """The same 404 for a job that never existed and for another account's job: ids tell nothing."""
    return ApiError(404, ErrorCode.INVALID_PARAMETERS, f"There is no job {job_id}.")


def job_ended(job_id: str, status: str) -> ApiError:
    return ApiError(
        409,
        ErrorCode.INVALID_PARAMETERS,
        f"The job {job_id} is {status}: only a QUEUED or IN_PROGRESS job can be stopped.",
    )


def server_error() -> ApiError:
    return ApiError(500, ErrorCode.SERVER_ERROR, SERVER_ERROR_DESCRIPTION)


def not_found(method: str, path: str) -> ApiError:
    return ApiError(
        404,
        ErrorCode.INVALID_PARAMETERS,
        f"There is no {method} {path}. Number lookups are POST /v1/hlr/sync.",
    )


def method_not_allowed(method: str, path: str, allowed: str) -> ApiError:
    """405 with ``Allow``, which RFC 9110 requires; ``allowed`` is the route's own comma-separated list."""
    methods = ", ".join(sorted({m.strip() for m in allowed.split(",") if m.strip()}))
    return ApiError(
        405, ErrorCode.INVALID_PARAMETERS, f"{path} does not accept {method}; use {methods}.", {"Allow": methods}
    )


ADMIN_DISABLED_DESCRIPTION = "admin API disabled: set admin_token"
ADMIN_CHALLENGE = 'Bearer realm="numlookup-admin"'


def admin_disabled() -> ApiError:
    """Every admin route while ``admin_token`` is unset: 404, as if absent, saying how to turn it on."""
    return ApiError(404, ErrorCode.INVALID_PARAMETERS, ADMIN_DISABLED_DESCRIPTION)


def admin_unauthorized() -> ApiError:
    return ApiError(
        401,
        ErrorCode.UNAUTHORIZED,
        "Admin endpoints need 'Authorization: Bearer <admin_token>'.",
        {"WWW-Authenticate": ADMIN_CHALLENGE},
    )


def unknown_account(name: str) -> ApiError:
    return ApiError(404, ErrorCode.INVALID_PARAMETERS, f"There is no account named {name!r}.")


def missing(description: str) -> ApiError:
    """404 for something an admin request names that does not exist (an allow-list entry, say)."""
    return ApiError(404, ErrorCode.INVALID_PARAMETERS, description)


def conflict(description: str) -> ApiError:
    """409: the request contradicts what is stored (a name taken, a correction below zero); nothing changed."""
    return ApiError(409, ErrorCode.INVALID_PARAMETERS, description)


# Errors that end the connection: the rest of the body is not worth reading.
_CLOSE = {"Connection": "close"}


def too_many_requests(retry_after: int, why: str) -> ApiError:
    """429: ``why`` says which limit; ``Retry-After`` says when a retry can succeed."""
    return ApiError(
        429,
        ErrorCode.CLIENT_ERROR,
        f"Too many requests: {why} Retry after {retry_after} s.",
        {"Retry-After": str(retry_after)},
    )


def body_too_large(limit: int) -> ApiError:
    return ApiError(
        413, ErrorCode.INVALID_PARAMETERS, f"The request body is larger than the limit of {limit} bytes.", _CLOSE
    )


def body_timeout(seconds: float) -> ApiError:
    return ApiError(
        408, ErrorCode.CLIENT_ERROR, f"The request body did not arrive within {seconds:g} s; send it at once.", _CLOSE
    )


def body_stalled(seconds: float) -> ApiError:
    """408 for an upload (a bulk job's file) that sent nothing for ``seconds``."""
    return ApiError(
        408, ErrorCode.CLIENT_ERROR, f"The request body stalled: nothing arrived for {seconds:g} s.", _CLOSE
    )


def header_timeout(seconds: float) -> ApiError:
    """408 for a header block still incomplete ``seconds`` after its first byte; the server answers it, not a route."""
    return ApiError(
        408,
        ErrorCode.CLIENT_ERROR,
        f"The request headers did not arrive within {seconds:g} s; send them at once.",
        _CLOSE,
    )


def invalid_idempotency_key(why: str) -> ApiError:
    """400, code 102: the header is malformed, so the request is not run (nor remembered)."""
    return ApiError(400, ErrorCode.INVALID_PARAMETERS, f"The Idempotency-Key header is wrong: {why}.")


def idempotency_key_in_use() -> ApiError:
    """409 while the key's first request runs (draft-ietf-httpapi-idempotency-key-header: "a request is outstanding").

    Code 106, as for 429: a retry needs no fix, only a moment (``Retry-After``),
    and 106 ("Client error") is the one code the official clients accept that
    blames neither the credentials (101), the parameters (102) nor the server (103).
    """
    return ApiError(
        409,
        ErrorCode.CLIENT_ERROR,
        "A request with this Idempotency-Key is still being processed; retry after it has finished "
        "to get its response.",
        {"Retry-After": "1"},
    )


def idempotency_key_reused() -> ApiError:
    """422, code 102: the key was used with another body or route; the parameters are what is wrong.

    The client must change something (use a new key for a new request) before it
    retries, which is what 102 ("Invalid parameters") tells the official clients.
    """
    return ApiError(
        422,
        ErrorCode.INVALID_PARAMETERS,
        "This Idempotency-Key was used with a different request (another body or route); "
        "use a new key for a new request.",
    )


def not_ready(reason: str) -> ApiError:
    return ApiError(503, ErrorCode.SERVER_ERROR, f"Not ready: {reason}.")


_encoder = msgspec.json.Encoder()


def error_response(error: ApiError) -> Response:
    """The wire's error body as a response; also an ASGI app, so middleware can answer with it."""
    return Response(
        _encoder.encode(error.body()),
        status_code=error.http_status,
        media_type="application/json",
        headers=error.headers,
    )
