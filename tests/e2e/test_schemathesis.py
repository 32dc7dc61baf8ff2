"""schemathesis against our own ``/openapi.json``, over a real socket to a running server.

Why: the request and response bodies in the document are generated from the
Structs the handler uses, but the status codes, headers and error paths are
written by hand, and the server's edges (the abuse guard, Starlette's routing,
the request-id middleware) answer before the handler runs. schemathesis reads
the document the server serves, generates requests from it (valid ones, and
ones that break it on purpose), and checks every answer against it: no 5xx,
only documented status codes, the documented content type, the documented
headers present, the body of that status's schema, valid data accepted and
invalid data refused, and the declared auth actually enforced: Basic for the
lookup, the admin API's bearer token for ``/admin/v1/…``.

The admin routes are exercised on accounts of their own (``TARGETS``): a path's
``name`` is one of them four times in five, so generated changes, top-ups and
corrections reach real accounts, and otherwise generated, so unknown names meet
their 404. The lookups' account is never a target: a rotated secret or a disabled
account would turn valid lookups into 401s.

The number of generated cases is bounded (see the ``*_EXAMPLES`` constants),
printed, and asserted to have reached its floor, so the module cannot pass by
generating nothing. Hypothesis is derandomized for a reproducible CI run (only
schemathesis's own choice of when to send the document's example request, about
one case in five, is random), with no per-example deadline: bounded by count, not time.
"""

from __future__ import annotations

import base64
import ipaddress
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, BaseSchema, Case, GenerationMode, checks
from schemathesis.specs.openapi.formats import unregister_string_format

from numlookup.accounts import NewCredentials, create_account
from numlookup.billing import parse_amount
from tests.e2e.conftest import Live, start_live

SYNC = "/v1/hlr/sync"
ADMIN = "/admin/v1/"
TOKEN = "schemathesis-admin-token-7a41c2"
TARGETS = ("target-a", "target-b", "target-c")
# Generated cases per generation mode (valid, invalid) of each operation that takes input:
# the lookup, each admin operation, the dataset import (each case of it compiles a dataset).
# Operations without input (the GETs) have one possible request: Hypothesis sends it once.
LOOKUP_EXAMPLES = 200
ADMIN_EXAMPLES = 25
IMPORT_EXAMPLES = 10
# Generated lookups and admin requests sent with no, wrong or malformed credentials.
UNAUTHORIZED_EXAMPLES = 220
# Floors the runs must reach: a little under the bounds, since Hypothesis may stop
# early only when a strategy has no more distinct values to give. Together at least
# 1,000 cases a run.
MIN_CONFORMANCE_CASES = 900
MIN_UNAUTHORIZED_CASES = 200
assert MIN_CONFORMANCE_CASES + MIN_UNAUTHORIZED_CASES >= 1000
# What every answer is held to, whatever the request.
CONFORMANCE = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
]
# With valid credentials, also: valid data is accepted, and the declared auth is enforced
# (for a 2xx, schemathesis re-sends the request without and with wrong credentials).
AUTHENTICATED = [*CONFORMANCE, checks.positive_data_acceptance, checks.ignored_auth]
BOUNDED = settings(
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
UNDECLARED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")
T = TypeVar("T")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """Rate limits and the failed-login throttle off (0 disables each): generated requests
    come back to back, and hundreds of them fail authentication on purpose."""
    yield from start_live(
        tmp_path_factory.mktemp("schemathesis"),
        env={
            "NUMLOOKUP_RATE_LIMIT_PER_IP": "0",
            "NUMLOOKUP_AUTH_FAILURE_LIMIT": "0",
            "NUMLOOKUP_ADMIN_TOKEN": TOKEN,
        },
    )


@pytest.fixture(scope="module")
def creds(api: Live) -> NewCredentials:
    """Enough credits that no generated lookup meets a 402 (at most 10 numbers at 0.01 each)."""
    made = api.account(credits="1000")
    for name in TARGETS:
        create_account(api.engine, name, credits=parse_amount("100"))
    return made


def networks() -> st.SearchStrategy[str]:
    """What ``format: cidr`` means and JSON Schema cannot say: a network with its host bits zero.

    Mostly a few common ones, so that generated removals find what generated additions
    (and the default allow-list) put there; otherwise any network or single address.
    """

    def network(address: ipaddress.IPv4Address | ipaddress.IPv6Address, prefix: int) -> str:
        return str(ipaddress.ip_network(f"{address}/{min(prefix, address.max_prefixlen)}", strict=False))

    common = st.sampled_from(["0.0.0.0/0", "::/0", "10.0.0.0/8", "192.0.2.0/24", "2001:db8::/32"])
    return st.one_of(common, st.builds(network, st.ip_addresses(), st.integers(0, 128)), st.ip_addresses().map(str))


@pytest.fixture(scope="module", autouse=True)
def cidr_format() -> Iterator[None]:
    schemathesis.openapi.format("cidr", networks())
    yield
    unregister_string_format("cidr")


def load_schema(url: str, creds: NewCredentials | None = None) -> BaseSchema:
    """The served document, with our credentials on every generated request when given.

    The credentials come from configuration rather than generation, so invalid-data
    cases break the body, not the Authorization header (whose own test is below).
    The dataset import also answers 400 to valid data: its body is a file whose lines
    the importer checks, which a schema of ``type: string`` cannot describe; so does a
    job's submit, whose callback_url must resolve (to a public address) at submit time.
    """
    config: dict[str, Any] = {"base-url": url, "generation": {"with-security-parameters": False}}
    if creds is not None:
        config["auth"] = {
            "openapi": {
                "basicAuth": {"username": creds.api_username, "password": creds.api_password},
                "adminToken": {"bearer": TOKEN},
            }
        }
        config["dictionaries"] = {"targets": {"values": list(TARGETS)}}
        config["parameters"] = {"path.name": {"dictionary": "targets", "probability": 0.8}}
        config["operations"] = [
            {
                "include-operation-id": "importDataset",
                "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "400", "401", "404", "409"]}},
            },
            {
                # A job's callback_url must resolve to an address the server may call: DNS, not a schema, says so.
                # And a file body is text: a "schema-violating" body (a number where the schema says string)
                # goes over the wire as its text, a valid one-line file; the tally below shows invalid
                # query parameters and JSON bodies refused with 400.
                "include-operation-id": "createJob",
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": ["2xx", "400", "401", "404", "409"]},
                    "negative_data_rejection": {"expected-statuses": ["202", "400", "401", "404", "409", "413", "422"]},
                },
            },
            {
                # A page's cursor must name a job of an earlier page: any string fits the schema.
                "include-operation-id": "listJobs",
                "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "400", "401"]}},
            },
        ]
    return schemathesis.openapi.from_url(f"{url}/openapi.json", config=schemathesis.Config.from_dict(config))


IMPORT = f"POST {ADMIN}datasets/{{kind}}"


def examples(label: str) -> int:
    """Cases per generation mode of the operation ``label``."""
    if label == f"POST {SYNC}":
        return LOOKUP_EXAMPLES
    return IMPORT_EXAMPLES if label == IMPORT else ADMIN_EXAMPLES


def run_examples(strategy: st.SearchStrategy[T], examples: int, send: Callable[[T], None]) -> None:
    """Hypothesis feeds ``send`` up to ``examples`` values of ``strategy``; a failure is shrunk and re-raised."""

    @settings(BOUNDED, max_examples=examples)
    @given(value=strategy)
    def run(value: T) -> None:
        send(value)

    run()


def takes_input(operation: APIOperation[Any, Any, Any, Any]) -> bool:
    return bool(operation.body) or any(True for _ in operation.iter_parameters())


def report(
    capsys: pytest.CaptureFixture[str], record_property: Callable[[str, object], None], what: str, tally: Counter[Any]
) -> int:
    """Print the case count even without ``-s`` (CI logs show it) and record it in JUnit XML."""
    total = sum(tally.values())
    record_property(f"schemathesis_cases_{what}", total)
    with capsys.disabled():
        print(f"\nschemathesis case count ({what}): {total}")
        for key, count in sorted(tally.items()):
            print(f"  {' '.join(map(str, key))}: {count}")
    return total


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def wrong_authorizations(creds: NewCredentials) -> st.SearchStrategy[str | None]:
    """No header, our username with another password, unknown users, undecodable payloads, other schemes.

    Unknown usernames lean on control characters: a NUL reached PostgreSQL, which
    refuses it in text, and the 401 was a 500.
    """
    user_ids = st.one_of(
        st.text(max_size=30),
        st.text(st.sampled_from("\x00\x01\t\x7f\u00e9a%'"), min_size=1, max_size=8),
        st.sampled_from(["\x00", "a\x00b", f"{creds.api_username}\x00", "' OR '1'='1", "%00", "x" * 300]),
    )
    return st.one_of(
        st.text(max_size=30).filter(lambda p: p != creds.api_password).map(lambda p: basic(creds.api_username, p)),
        st.builds(basic, user_ids, st.text(max_size=30)),
        st.binary(max_size=40).map(lambda raw: "Basic " + base64.b64encode(raw).decode()),
        st.from_regex(r"(Basic|Bearer|basic|Digest)( [!-~]{0,40})?", fullmatch=True),
        st.none(),
    )


def test_generated_requests_conform_to_the_schema(
    api: Live, creds: NewCredentials, capsys: pytest.CaptureFixture[str], record_property: Callable[[str, object], None]
) -> None:
    schema = load_schema(api.url, creds)
    tally: Counter[tuple[str, str, int]] = Counter()
    networks = 0

    def sender(label: str, mode: GenerationMode) -> Callable[[Case[Any]], None]:
        def send(case: Case[Any]) -> None:
            nonlocal networks
            response = case.call_and_validate(checks=AUTHENTICATED)
            tally[(label, mode.value, response.status_code)] += 1
            if label == f"POST {SYNC}" and response.status_code == 200:
                networks += sum(item["originalNetwork"] is not None for item in response.json()["result"])

        return send

    operations = [operation for methods in schema.values() for operation in methods.values()]
    with api.client() as client:
        documented = {
            f"{method.upper()} {path}"
            for path, item in client.get("/openapi.json").json()["paths"].items()
            for method in item
        }
    # Every route the document lists is exercised, and the routes every client relies on are listed.
    assert {operation.label for operation in operations} == documented
    assert documented >= {f"POST {SYNC}", "GET /healthz", "GET /readyz", "GET /metrics"}
    admin = {label for label in documented if label.split(" ")[1].startswith(ADMIN)}
    assert admin >= {f"POST {ADMIN}accounts", f"POST {ADMIN}accounts/{{name}}/adjustments", IMPORT}
    for operation in operations:
        modes = (
            [GenerationMode.POSITIVE, GenerationMode.NEGATIVE] if takes_input(operation) else [GenerationMode.POSITIVE]
        )
        for mode in modes:
            run_examples(
                operation.as_strategy(generation_mode=mode), examples(operation.label), sender(operation.label, mode)
            )

    total = report(capsys, record_property, "conformance", tally)
    assert total >= MIN_CONFORMANCE_CASES
    lookups = {(mode, status) for (label, mode, status) in tally if label == f"POST {SYNC}"}
    assert lookups == {("positive", 200), ("negative", 400)}  # valid: answered; invalid: refused as 102/103
    jobs = {label for label in documented if " /v1/hlr/jobs" in label}
    others = {status for (label, _, status) in tally if label != f"POST {SYNC}" and label not in admin | jobs}
    assert others == {200}
    # Valid job submits were queued (a few met a callback_url that does not resolve), invalid ones refused.
    assert tally[("POST /v1/hlr/jobs", "positive", 202)] > 0 and tally[("POST /v1/hlr/jobs", "negative", 400)] > 0
    # Each admin operation did its work for some valid cases (and the rest met 404 or 409), and
    # each one with a body refused some invalid ones with 400.
    for label in admin - {IMPORT}:
        assert any(200 <= status < 300 for (seen, mode, status) in tally if seen == label and mode == "positive"), label
    for operation in operations:
        if operation.label in admin and operation.body:
            assert tally[(operation.label, "negative", 400)] > 0, operation.label
    assert {label for (label, _, _) in tally} == documented
    assert networks > 0  # the document's example numbers were sent, so network objects were checked too


def test_requests_without_valid_credentials_are_refused_with_401(
    api: Live, creds: NewCredentials, capsys: pytest.CaptureFixture[str], record_property: Callable[[str, object], None]
) -> None:
    """Credentials are checked before the body: valid or invalid bodies alike get the documented 401.

    Lookups with either kind of body; admin requests with valid ones (an invalid path
    parameter may miss the route, and a route that is not there has no credentials to check).
    """
    schema = load_schema(api.url)
    lookup = schema[SYNC]["POST"]
    admin = [operation for methods in schema.values() for operation in methods.values() if ADMIN in operation.path]
    assert admin
    lookups = st.one_of(
        [lookup.as_strategy(generation_mode=mode) for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
    )
    admins = st.one_of([operation.as_strategy(generation_mode=GenerationMode.POSITIVE) for operation in admin])
    # Half lookups, half admin requests, whatever the number of admin operations.
    requests = st.booleans().flatmap(lambda to_admin: admins if to_admin else lookups)
    tally: Counter[tuple[str, str, int]] = Counter()

    def send(drawn: tuple[Case[Any], str | None]) -> None:
        case, authorization = drawn
        headers = None if authorization is None else {"Authorization": authorization}
        response = case.call_and_validate(headers=headers, checks=CONFORMANCE)
        who = "admin" if ADMIN in case.operation.path else "lookup"
        tally[(who, "no credentials" if authorization is None else "wrong credentials", response.status_code)] += 1
        assert response.status_code == 401, response.text

    run_examples(st.tuples(requests, wrong_authorizations(creds)), UNAUTHORIZED_EXAMPLES, send)
    total = report(capsys, record_property, "unauthorized", tally)
    assert total >= MIN_UNAUTHORIZED_CASES
    assert {(who, kind) for who, kind, _ in tally} == {
        (who, kind) for who in ("admin", "lookup") for kind in ("no credentials", "wrong credentials")
    }


def test_undeclared_methods_are_405_with_allow(api: Live) -> None:
    """RFC 9110 requires ``Allow`` on a 405; ``schemathesis run`` found it missing (its coverage
    phase sends undeclared methods, which the generated cases above do not).

    Every documented path, every method it does not declare: 405, the wire's error
    body (102), and ``Allow`` naming exactly the declared methods (HEAD comes with GET).
    """
    with api.client() as client:
        paths = client.get("/openapi.json").json()["paths"]
        for path, item in paths.items():
            declared = {method.upper() for method in item}
            allowed = declared | ({"HEAD"} if "GET" in declared else set())
            for method in set(UNDECLARED_METHODS) - declared:
                response = client.request(method, path)
                assert response.status_code == 405, (method, path)
                assert {m.strip() for m in response.headers["allow"].split(",")} == allowed, (method, path)
                assert response.json()["error"]["code"] == 102
                assert response.headers["content-type"] == "application/json"
                assert response.headers["x-request-id"]


def test_the_document_declares_the_headers_every_answer_carries(api: Live) -> None:
    """What makes ``response_headers_conformance`` check something.

    The required X-Request-Id, the 401 challenge, Retry-After.
    """
    with api.client() as client:
        document = client.get("/openapi.json").json()
        refused = client.post(SYNC, json={"numbers": ["+37251000001"]})
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                assert response["headers"]["X-Request-Id"]["required"] is True, (method, path, status)
    lookup = document["paths"][SYNC]["post"]["responses"]
    assert lookup["401"]["headers"]["WWW-Authenticate"]["required"] is True
    assert lookup["429"]["headers"]["Retry-After"]["required"] is True
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == 'Basic realm="numlookup"'
