"""The admin API's part of ``/openapi.json``: its paths, its Structs' schemas and its bearer scheme.

Generated from the Structs in ``wire`` like the lookup's part, and added only
when ``admin_token`` is set, so the document describes what the server serves.
It declares that a bearer token is needed, never what it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from numlookup.api.admin import PREFIX
from numlookup.api.admin.credits import DEFAULT_PAGE, MAX_ID, MAX_PAGE
from numlookup.api.admin.datasets import FLAGS, HTTP_FORMATS
from numlookup.api.admin.wire import (
    AccountList,
    AccountView,
    AccountWithSecret,
    Adjustment,
    Booked,
    Cidr,
    LedgerPage,
    Name,
    NetworkEntry,
    NewAccount,
    NewPrice,
    NewStatusStyle,
    TopUp,
)
from numlookup.api.errors import ADMIN_CHALLENGE, ErrorBody
from numlookup.datasets.catalog import KINDS

SCHEME = "adminToken"
_REF = "#/components/schemas/{name}"
_REQUEST_ID = {
    "description": "The request's id.",
    "required": True,
    "schema": {"type": "string", "format": "uuid"},
}


def _error(description: str, *, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "headers": {"X-Request-Id": _REQUEST_ID, **(headers or {})},
        "content": {"application/json": {"schema": {"$ref": _REF.format(name="ErrorBody")}}},
    }


_REFUSALS: dict[str, dict[str, Any]] = {
    "400": _error("102: the body, a parameter or a value is wrong; the description says which. Nothing changed."),
    "401": _error(
        "101: no or a wrong admin token.",
        headers={
            "WWW-Authenticate": {
                "description": "The Bearer challenge.",
                "required": True,
                "schema": {"const": ADMIN_CHALLENGE},
            }
        },
    ),
    "404": _error("102: no such account (or allow-list entry); or the admin API is off (admin_token unset)."),
    "408": _error("106: the body did not arrive in time; nothing changed."),
    "409": _error(
        "102: contradicts what is stored (a name taken, a network listed, a balance too low); nothing changed."
    ),
    "413": _error("102: the body is larger than the server's limit; nothing changed."),
    "429": _error(
        "106: too many failed authentications from this client address.",
        headers={
            "Retry-After": {
                "description": "Seconds until a retry can succeed.",
                "required": True,
                "schema": {"type": "integer", "minimum": 1},
            }
        },
    ),
    "500": _error("103: server error."),
}


@dataclass(frozen=True)
class _Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    answer: type[msgspec.Struct]
    status: str = "200"
    body: type[msgspec.Struct] | None = None
    query: list[dict[str, Any]] = field(default_factory=list)
    refusals: tuple[str, ...] = ()


def _query(name: str, schema: dict[str, Any], description: str, *, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


_OPERATIONS = [
    _Operation("get", "/accounts", "listAccounts", "All accounts, by name", AccountList),
    _Operation(
        "post",
        "/accounts",
        "createAccount",
        "Create an account; its API password is in this answer only",
        AccountWithSecret,
        "201",
        NewAccount,
        refusals=("409",),
    ),
    _Operation("get", "/accounts/{name}", "getAccount", "One account", AccountView),
    _Operation("post", "/accounts/{name}/disable", "disableAccount", "Refuse the account's lookups (101)", AccountView),
    _Operation("post", "/accounts/{name}/enable", "enableAccount", "Serve the account's lookups again", AccountView),
    _Operation(
        "put",
        "/accounts/{name}/price",
        "setPrice",
        "The account's price, or null for the server's",
        AccountView,
        body=NewPrice,
    ),
    _Operation(
        "put",
        "/accounts/{name}/status-style",
        "setStatusStyle",
        "The account's status words, or null for the default",
        AccountView,
        body=NewStatusStyle,
    ),
    _Operation(
        "post",
        "/accounts/{name}/allowed-networks",
        "allowNetwork",
        "Add a network to the allow-list",
        AccountView,
        body=NetworkEntry,
        refusals=("409",),
    ),
    _Operation(
        "delete",
        "/accounts/{name}/allowed-networks",
        "denyNetwork",
        "Take a network off the allow-list",
        AccountView,
        query=[_query("cidr", msgspec.json.schema(Cidr), "The network to remove.", required=True)],
        refusals=("400",),
    ),
    _Operation(
        "post",
        "/accounts/{name}/rotate-secret",
        "rotateSecret",
        "A new API password, in this answer only; the old one stops working",
        AccountWithSecret,
    ),
    _Operation("post", "/accounts/{name}/credits", "topUp", "Add credits (a credit ledger row)", Booked, body=TopUp),
    _Operation(
        "post",
        "/accounts/{name}/adjustments",
        "adjustCredits",
        "Correct the balance either way, with a note (an adjustment ledger row); never below zero",
        Booked,
        body=Adjustment,
        refusals=("409",),
    ),
    _Operation(
        "get",
        "/accounts/{name}/ledger",
        "getLedger",
        "The account's ledger, newest first, a page at a time",
        LedgerPage,
        query=[
            _query(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE},
                "Rows per page.",
            ),
            _query(
                "before",
                {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                "Only rows older than this row id: the previous page's next_before.",
            ),
        ],
        refusals=("400",),
    ),
]

# What a dataset import answers: ``ImportReport.as_dict``.
_IMPORT_REPORT = {
    "type": "object",
    "required": ["ok", "kind", "version", "mode", "rows", "records", "skipped", "seconds", "errors"],
    "properties": {
        "ok": {"const": True},
        "kind": {"enum": list(KINDS)},
        "version": {"type": "integer"},
        "mode": {"enum": ["full", "delta"]},
        "rows": {"type": "integer"},
        "records": {"type": "integer"},
        "skipped": {"type": "integer"},
        "seconds": {"type": "number"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["line", "reason"],
                "properties": {"line": {"type": "integer"}, "reason": {"type": "string"}},
            },
        },
    },
}
_FLAG = {"enum": list(FLAGS)}


def _import_operation() -> dict[str, Any]:
    """``POST /admin/v1/datasets/{kind}``: the body is the file itself."""
    return {
        "operationId": "importDataset",
        "summary": "Import operator ranges or ported numbers (the file as the body); every worker serves it",
        "security": [{SCHEME: []}],
        "parameters": [
            {"name": "kind", "in": "path", "required": True, "schema": {"enum": list(KINDS)}},
            _query("format", {"enum": list(HTTP_FORMATS), "default": "csv"}, "The file's format."),
            _query("delta", _FLAG, "Change the active version rather than replace it."),
            _query("skip_invalid", _FLAG, "Skip bad lines (reported) rather than refuse the file."),
        ],
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}}},
        },
        "responses": {
            "200": {
                "description": "Imported and served; the report.",
                "headers": {"X-Request-Id": _REQUEST_ID},
                "content": {"application/json": {"schema": _IMPORT_REPORT}},
            },
            **{status: _REFUSALS[status] for status in ("400", "401", "404", "429", "500")},
        },
    }


def admin_openapi() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The admin API's paths, component schemas and security scheme, to merge into the document."""
    structs: list[type[msgspec.Struct]] = []
    for operation in _OPERATIONS:
        structs += [operation.answer] if operation.body is None else [operation.answer, operation.body]
    structs = list(dict.fromkeys([*structs, ErrorBody]))
    refs, components = msgspec.json.schema_components(structs, ref_template=_REF)
    ref = dict(zip(structs, refs, strict=True))
    account_name = {
        "name": "name",
        "in": "path",
        "required": True,
        "schema": msgspec.json.schema(Name),
        "description": "The account's name.",
    }
    paths: dict[str, dict[str, Any]] = {}
    for operation in _OPERATIONS:
        statuses = {"401", "404", "429", "500", *operation.refusals}
        if operation.body is not None:
            statuses |= {"400", "408", "413"}
        success: dict[str, Any] = {
            "description": operation.summary,
            "headers": {"X-Request-Id": _REQUEST_ID},
            "content": {"application/json": {"schema": ref[operation.answer]}},
        }
        if operation.status == "201":
            success["headers"]["Location"] = {
                "description": "The new account's path.",
                "required": True,
                "schema": {"type": "string"},
            }
        document: dict[str, Any] = {
            "operationId": operation.operation_id,
            "summary": operation.summary,
            "security": [{SCHEME: []}],
            "parameters": ([account_name] if "{name}" in operation.path else []) + operation.query,
            "responses": {operation.status: success, **{s: _REFUSALS[s] for s in sorted(statuses)}},
        }
        if operation.body is not None:
            document["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref[operation.body]}},
            }
        paths.setdefault(f"{PREFIX}{operation.path}", {})[operation.method] = document
    paths[f"{PREFIX}/datasets/{{kind}}"] = {"post": _import_operation()}
    schemes = {SCHEME: {"type": "http", "scheme": "bearer", "description": "The server's admin_token setting."}}
    return paths, components, schemes
