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
from numlookup.jobs.intake import MAX_INPUT_CHARS
from numlookup.jobs.model import (
    CALLBACK_URL_PATTERN,
    FRIENDLY_NAME_PATTERN,
    MAX_CALLBACK_URL,
    MAX_FRIENDLY_NAME,
    STATUSES,
    JobEvent,
    JobList,
    JobObject,
    JobSubmission,
)

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


def openapi_document(max_numbers: int, max_job_numbers: int = 10_000_000, *, admin: bool = False) -> dict[str, Any]:
    document = _lookup_document(max_numbers, max_job_numbers)
    if admin:
        paths, schemas, schemes = admin_openapi()
        document["paths"].update(paths)
        document["components"]["schemas"].update(schemas)
        document["components"]["securitySchemes"].update(schemes)
    return document


def _lookup_document(max_numbers: int, max_job_numbers: int) -> dict[str, Any]:
    (request_ref, success_ref, _, submission_ref, job_ref, list_ref, event_ref), components = (
        msgspec.json.schema_components(
            [NumbersToInvestigate, LookupSuccess, ErrorBody, JobSubmission, JobObject, JobList, JobEvent],
            ref_template="#/components/schemas/{name}",
        )
    )
    _describe_jobs(components, max_job_numbers)
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
        "webhooks": {"jobEnded": _job_ended_webhook(event_ref)},
        "paths": {
            **_job_paths(submission_ref, job_ref, list_ref),
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


# ---------------------------------------------------------------------------------------------- bulk jobs

_JOB_ID = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "description": "The job's id, as the submit returned it (`job_…`).",
    "schema": {"type": "string", "pattern": "^[!-~]{1,100}$"},
}
_JOB_STATUS_HEADER = {
    "description": "The job's status when the download began: results are complete once it is COMPLETED.",
    "required": True,
    "schema": {"type": "string", "enum": list(STATUSES)},
}
_UNAUTHORIZED = _error_response("101: wrong credentials, disabled account or IP not allowed.", challenge=True)
_NOT_FOUND = _error_response("102: no such job for this account (another account's job is the same 404).")


def _text_query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def _describe_jobs(components: dict[str, Any], max_job_numbers: int) -> None:
    submission = components["JobSubmission"]["properties"]
    submission["numbers"].update(
        {
            "minItems": 1,
            "maxItems": max_job_numbers,
            "description": "The numbers, in E.164 or international form, as for the sync call. "
            "A JSON body is read whole (max_job_json_bytes); larger jobs upload a file.",
        }
    )
    submission["numbers"]["items"]["maxLength"] = MAX_INPUT_CHARS
    submission["callback_url"]["description"] = (
        "Where the job's end is announced (webhook event jobEnded): an absolute http(s) URL, no credentials."
    )
    submission["max_age"]["description"] = "The oldest cached live answer accepted, in seconds; 0 asks the source."
    job = components["JobObject"]["properties"]
    job["status"].update({"enum": list(STATUSES)})
    for field in ("created_at", "updated_at", "started_at", "completed_at"):
        job[field]["description"] = "ISO 8601, UTC."
    job["reserved"]["description"] = "Credits the job still holds of the account's balance (an exact decimal)."
    job["charged"]["description"] = "Credits charged so far: as the sync call would charge for the same numbers."
    job["total_count"]["description"] = "Numbers submitted: valid_count + invalid_count + duplicate_count."
    job["valid_count"]["description"] = "Distinct valid numbers: the chargeable ones."
    job["invalid_count"]["description"] = "Distinct invalid inputs: free."
    job["duplicate_count"]["description"] = "Repeats of an earlier number (or invalid input) of the job: free."
    job["error"]["description"] = "Why the job FAILED; null otherwise."


def _job_paths(submission_ref: dict[str, Any], job_ref: dict[str, Any], list_ref: dict[str, Any]) -> dict[str, Any]:
    security: list[dict[str, list[str]]] = [{"basicAuth": []}]
    job_response = {
        "description": "The job.",
        "headers": {"X-Request-Id": _REQUEST_ID},
        "content": {"application/json": {"schema": job_ref}},
    }
    file_body = {
        "schema": {"type": "string", "pattern": "^[^\\x00]*$"},
        "example": "+37251000001\n+447712345678\n",
    }
    file_options = [
        _text_query(
            "column", "The body is CSV: the numbers are in this column (from 0).", {"type": "integer", "minimum": 0}
        ),
        _text_query("header", "Skip the body's first line.", {"type": "boolean"}),
        _text_query(
            "callback_url",
            "As in a JSON body.",
            {"type": "string", "maxLength": MAX_CALLBACK_URL, "pattern": CALLBACK_URL_PATTERN},
        ),
        _text_query("max_age", "As in a JSON body.", {"type": "number", "minimum": 0}),
        _text_query(
            "friendly_name",
            "As in a JSON body.",
            {"type": "string", "maxLength": MAX_FRIENDLY_NAME, "pattern": FRIENDLY_NAME_PATTERN},
        ),
    ]
    return {
        "/v1/hlr/jobs": {
            "post": {
                "operationId": "createJob",
                "summary": "Submit a bulk job",
                "description": "The numbers as JSON, or a file streamed as text/csv or text/plain (one number a line, "
                "or a CSV column), whose options are query parameters. The whole body is read, resolved and its "
                "credits reserved (the dearest outcome of each distinct valid number) before the 202; "
                "a body that cannot be read, a callback_url the server will not call (one that does not resolve, "
                "or resolves to a loopback, private or link-local address unless the server allows those), or "
                "credits that do not cover it, create nothing. "
                + _IDEMPOTENCY.replace("the first response", "the first 202, the same job reserved once,")
                + " A streamed file's fingerprint covers its type, its query parameters and its bytes.",
                "security": security,
                "parameters": file_options,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": submission_ref,
                            "example": {"numbers": ["+37251000001", "+447712345678"], "friendly_name": "march"},
                        },
                        "text/csv": file_body,
                        "text/plain": file_body,
                    },
                },
                "responses": {
                    "202": {
                        "description": "Queued: the job, with its counts and reservation.",
                        "headers": {
                            "X-Request-Id": _REQUEST_ID,
                            "Idempotent-Replayed": {
                                "description": "`true` on a response replayed for a repeated Idempotency-Key.",
                                "required": False,
                                "schema": {"const": "true"},
                            },
                            "Location": {
                                "description": "The job's URL.",
                                "required": True,
                                "schema": {"type": "string"},
                            },
                        },
                        "content": {"application/json": {"schema": job_ref}},
                    },
                    "400": _error_response(
                        "102: the body or a parameter is wrong, the file cannot be read, or the callback_url is "
                        "refused (the description says why); 103: too many numbers."
                    ),
                    "401": _UNAUTHORIZED,
                    "402": _error_response("104: the credits do not cover the job's reservation; nothing was created."),
                    "408": _error_response("106: the headers or the body did not arrive in time; nothing was created."),
                    "409": _error_response(
                        "106: a request with this Idempotency-Key is still running; retry shortly.",
                        retry_after=True,
                    ),
                    "413": _error_response("102: the body is larger than max_job_bytes; nothing was created."),
                    "422": _error_response(
                        "102: this Idempotency-Key was used with another request body; nothing was created."
                    ),
                    "429": _TOO_MANY,
                    "500": _error_response("103: server error; nothing was created or charged."),
                },
            },
            "get": {
                "operationId": "listJobs",
                "summary": "The account's jobs, newest first",
                "security": security,
                "parameters": [
                    _text_query(
                        "limit", "Jobs per page (default 20).", {"type": "integer", "minimum": 1, "maximum": 100}
                    ),
                    _text_query(
                        "cursor", "The previous page's next_cursor (another value is a 400).", {"type": "string"}
                    ),
                ],
                "responses": {
                    "200": {
                        "description": "A page of jobs.",
                        "headers": {"X-Request-Id": _REQUEST_ID},
                        "content": {"application/json": {"schema": list_ref}},
                    },
                    "400": _error_response("102: a parameter is wrong, or the cursor names no job of the account."),
                    "401": _UNAUTHORIZED,
                    "429": _TOO_MANY,
                },
            },
        },
        "/v1/hlr/jobs/{job_id}": {
            "get": {
                "operationId": "getJob",
                "summary": "One job",
                "security": security,
                "parameters": [_JOB_ID],
                "responses": {"200": job_response, "401": _UNAUTHORIZED, "404": _NOT_FOUND, "429": _TOO_MANY},
            }
        },
        "/v1/hlr/jobs/{job_id}/results": {
            "get": {
                "operationId": "getJobResults",
                "summary": "The job's results so far, streamed",
                "description": "csv: the columns of `numlookup lookup --input`; jsonl: one sync result object per "
                "line plus `input`. In input order; while the job runs, the chunks processed so far.",
                "security": security,
                "parameters": [
                    _JOB_ID,
                    _text_query("format", "csv (default) or jsonl.", {"type": "string", "enum": ["csv", "jsonl"]}),
                ],
                "responses": {
                    "200": {
                        "description": "The results.",
                        "headers": {"X-Request-Id": _REQUEST_ID, "X-Job-Status": _JOB_STATUS_HEADER},
                        "content": {
                            "text/csv": {"schema": {"type": "string"}},
                            "application/x-ndjson": {"schema": {"type": "string"}},
                        },
                    },
                    "400": _error_response("102: format is neither csv nor jsonl."),
                    "401": _UNAUTHORIZED,
                    "404": _NOT_FOUND,
                    "429": _TOO_MANY,
                },
            }
        },
        "/v1/hlr/jobs/{job_id}/stop": {
            "post": {
                "operationId": "stopJob",
                "summary": "Stop a job",
                "description": "STOPPED at once when no chunk is being processed, else STOP_REQUESTED until it is. "
                "Processed numbers stay charged and served; the rest of the reservation is released.",
                "security": security,
                "parameters": [_JOB_ID],
                "responses": {
                    "200": job_response,
                    "401": _UNAUTHORIZED,
                    "404": _NOT_FOUND,
                    "409": _error_response("102: the job has COMPLETED or FAILED already."),
                    "429": _TOO_MANY,
                },
            }
        },
    }


def _job_ended_webhook(event_ref: dict[str, Any]) -> dict[str, Any]:
    return {
        "post": {
            "summary": "A job ended",
            "description": "Sent to the job's callback_url once it is COMPLETED, FAILED or STOPPED: "
            "type job.completed, job.failed or job.stopped, and the job object as data.",
            "requestBody": {"required": True, "content": {"application/json": {"schema": event_ref}}},
            "responses": {"2XX": {"description": "Received."}},
        }
    }
