"""``GET /openapi.json``: OpenAPI 3.1 generated from the Structs the handler uses.

With the admin API on (``admin_token`` set), its part (``api/admin/openapi.py``) is merged in.
"""

from __future__ import annotations

from typing import Any

import msgspec

from numlookup import __version__
from numlookup.api.admin.openapi import admin_openapi
from numlookup.api.errors import ErrorBody
from numlookup.api.wire import LookupSuccess, NumbersToInvestigate

# Every response carries it (the request-id middleware is outermost), so it is required.
_REQUEST_ID: dict[str, Any] = {
    "description": "The request's id; for a lookup also its `request_id` and its ledger row's.",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}


def _error_response(description: str, *, retry_after: bool = False, challenge: bool = False) -> dict[str, Any]:
    headers: dict[str, Any] = {"X-Request-Id": _REQUEST_ID}
    if retry_after:
        headers["Retry-After"] = {
            "description": "Seconds until a retry can succeed.",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        }
    if challenge:
        headers["WWW-Authenticate"] = {
            "description": "The Basic challenge.",
            "required": True,
            "schema": {"const": 'Basic realm="numlookup"'},
        }
    return {
        "description": description,
        "headers": headers,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }


_IDEMPOTENCY = (
    "Optional header `Idempotency-Key` (draft-ietf-httpapi-idempotency-key-header; a quoted structured-field "
    'string such as `"8e03978e-40d5-43e8-bc93-6894a57f9324"`, or the bare value; at most 255 characters): '
    "the same key with the same body from the same account, until the key expires (the server's "
    "`idempotency_ttl_hours`, 24 by default), replays the first response "
    "(header `Idempotent-Replayed: true`, the same `request_id`) and charges nothing more; while the first "
    "request runs, 409; with another body, 422. Error answers are not remembered. This makes a retry after a "
    "timeout or a 502 safe."
)
# The spellings the API accepts for one number, another country's, and a number too short to be valid.
_EXAMPLE_REQUEST = {"numbers": ["+37251000001", "37251000001", "+372 5100-0001", "+447712345678", "12345"]}
_TOO_MANY = _error_response(
    "106: too many requests from this client address or account, or too many failed authentications "
    "from this address; nothing was charged.",
    retry_after=True,
)


def openapi_document(max_numbers: int, *, admin: bool = False) -> dict[str, Any]:
    document = _lookup_document(max_numbers)
    if admin:
        paths, schemas, schemes = admin_openapi()
        document["paths"].update(paths)
        document["components"]["schemas"].update(schemas)
        document["components"]["securitySchemes"].update(schemes)
    return document


def _lookup_document(max_numbers: int) -> dict[str, Any]:
    (request_ref, success_ref, _), components = msgspec.json.schema_components(
        [NumbersToInvestigate, LookupSuccess, ErrorBody], ref_template="#/components/schemas/{name}"
    )
    request = components["NumbersToInvestigate"]["properties"]
    request["numbers"].update(
        {"minItems": 1, "maxItems": max_numbers, "description": "Numbers to look up, in E.164 or international form."}
    )
    request["max_age"]["description"] = (
        "Extension (not in Messente's API): the oldest cached live answer accepted, in seconds; 0 asks the live source."
    )
    request["deadline"]["description"] = (
        "Extension: seconds to wait for live answers (at most the server's deadline); numbers not answered "
        "in time get the offline answer with status UNKNOWN and an error saying so."
    )
    result = components["NumberResult"]["properties"]
    result["checkedAt"].update({"format": "date-time", "description": "Extension: when the answer was checked (UTC)."})
    result["source"]["description"] = "Extension: offline, cache, osmo-hlr or upstream:<name>."
    result["status"]["description"] = (
        'INVALID, UNKNOWN, or reachability in the account\'s style: ONLINE/OFFLINE, ON/OFF or "true"/"false"; '
        "by default (auto) the words the calling official client's version accepts, ONLINE/OFFLINE for other clients."
    )
    result["ported"]["description"] = (
        "true/false where something knows: a ported dataset covering the number's country calling code, "
        "or a live source that told the current network; null (unknown) otherwise, and for invalid numbers."
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "numlookup Number Lookup API",
            "version": __version__,
            "description": "Messente-compatible number lookup: country, range holder network, porting, reachability.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "schemas": components,
            "securitySchemes": {"basicAuth": {"type": "http", "scheme": "basic"}},
        },
        "paths": {
            "/v1/hlr/sync": {
                "post": {
                    "operationId": "fetchInfo",
                    "summary": "Look up numbers",
                    # Not declared as a parameter: a schema cannot say "the same key with another body is
                    # 422", and generated clients and fuzzers would send one key with many bodies.
                    "description": _IDEMPOTENCY,
                    "security": [{"basicAuth": []}],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": request_ref, "example": _EXAMPLE_REQUEST}},
                    },
                    "responses": {
                        "200": {
                            "description": "One result per number, in input order.",
                            "headers": {
                                "X-Request-Id": _REQUEST_ID,
                                "Idempotent-Replayed": {
                                    "description": "`true` on a response replayed for a repeated Idempotency-Key.",
                                    "required": False,
                                    "schema": {"const": "true"},
                                },
                            },
                            "content": {"application/json": {"schema": success_ref}},
                        },
                        "400": _error_response("102: parameters wrong or missing; 103: too many numbers."),
                        "401": _error_response(
                            "101: wrong credentials, disabled account or IP not allowed.", challenge=True
                        ),
                        "402": _error_response("104: not enough credits."),
                        "408": _error_response(
                            "106: the headers or the body did not arrive in time; nothing was charged."
                        ),
                        "409": _error_response(
                            "106: a request with this Idempotency-Key is still running; retry shortly.",
                            retry_after=True,
                        ),
                        "413": _error_response("102: the body is larger than the server's limit; nothing was charged."),
                        "422": _error_response(
                            "102: this Idempotency-Key was used with another request body; nothing was charged."
                        ),
                        "429": _TOO_MANY,
                        "500": _error_response("103: server error; nothing was charged."),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "summary": "Live-source metrics of this worker process, Prometheus text format",
                    "responses": {
                        "200": {
                            "description": "Metrics",
                            "headers": {"X-Request-Id": _REQUEST_ID},
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        "429": _TOO_MANY,  # the per-IP limit covers every path but the probes
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "summary": "The process is alive",
                    "responses": {
                        "200": {
                            "description": "Alive",
                            "headers": {"X-Request-Id": _REQUEST_ID},
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["status"],
                                        "properties": {"status": {"const": "ok"}},
                                    }
                                }
                            },
                        }
                    },
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "ready",
                    "summary": "This worker can serve lookups: the database answers and the numbering data resolves",
                    "responses": {
                        "200": {
                            "description": "Ready; `data` names the operator dataset versions served (null: none).",
                            "headers": {"X-Request-Id": _REQUEST_ID},
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["status", "database", "data"],
                                        "properties": {
                                            "status": {"const": "ready"},
                                            "database": {"const": "ok"},
                                            "data": {
                                                "type": "object",
                                                "additionalProperties": {"type": ["integer", "null"]},
                                            },
                                        },
                                    }
                                }
                            },
                        },
                        "503": _error_response("103: not ready; the description says why."),
                    },
                }
            },
        },
    }
