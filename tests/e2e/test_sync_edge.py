"""The fused ``POST /v1/hlr/sync`` edge (``api.sync_edge``) answers exactly as the general stack it stands in for.

Why: the fused path re-does, in one frame, what four layers did (request id,
abuse guard, direct route, the lookup endpoint on Starlette's Request and
Response). A corpus of requests, sent byte for byte over real sockets to a real
server with the fused path and to one whose app was built with
``create_app(fused_sync=False)`` (``tests/e2e/general_server.py``), must get the
same status, headers (but ``Date`` and the generated request id), body (request
ids and ``checkedAt`` times aside), request log lines and error records (times,
ids and durations aside), metric deltas and ledger rows. The corpus covers each
of the contract's error codes and the edge's own refusals.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, select, text

from numlookup.accounts import NewCredentials, create_account
from numlookup.billing import parse_amount
from numlookup.settings import Settings
from numlookup.store import make_engine, upgrade
from numlookup.store.tables import ledger
from tests.support import Server, database_url

SCRAPER = "127.0.0.2"
NUMBERS = ["+37251000001", "+358401234567", "+4915112345678"]
DEFAULTS = Settings()
# Per-IP and per-account limits small enough for a few requests to meet them.
LIMITED = {
    "NUMLOOKUP_RATE_LIMIT_PER_IP": "0.001",
    "NUMLOOKUP_RATE_LIMIT_PER_IP_BURST": "6",
    "NUMLOOKUP_RATE_LIMIT_PER_ACCOUNT": "0.001",
    "NUMLOOKUP_RATE_LIMIT_PER_ACCOUNT_BURST": "2",
}


class GeneralServer(Server):
    """``numlookup serve`` with the general stack (``tests.e2e.general_server``) in place of the fused edge."""

    module = "tests.e2e.general_server"


@dataclass
class Node:
    """One server, its database and its accounts (made in the same order on both nodes: the same names and ids)."""

    server: Server
    engine: Engine
    accounts: dict[str, NewCredentials] = field(default_factory=dict)

    def account(self, name: str, credits: str) -> None:
        self.accounts[name] = create_account(self.engine, name, credits=parse_amount(credits))

    def basic(self, name: str) -> str:
        creds = self.accounts[name]
        return "Basic " + base64.b64encode(f"{creds.api_username}:{creds.api_password}".encode()).decode()


def _start(server_type: type[Server], data_dir: Path, env: dict[str, str]) -> Iterator[Node]:
    engine = make_engine(database_url(data_dir))
    upgrade(engine)
    server = server_type(data_dir, env={"NUMLOOKUP_LOG_FORMAT": "json", **env}).start()
    node = Node(server, engine)
    for name, credits in (("rich", "1000"), ("poor", "0"), ("other", "1000")):
        node.account(name, credits)
    try:
        yield node
    finally:
        server.stop()
        engine.dispose()


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: the server answered nothing (the client went away)
    headers: list[tuple[str, str]]
    body: bytes


def _exchange(node: Node, request: bytes, *, then: bytes | None = None, hang_up: bool = False) -> Answer:
    """Send ``request`` (a whole HTTP/1.1 request's bytes) on a new connection and read the answer.

    ``then``: the body, sent only after a ``100 Continue`` (a final answer before it is the answer).
    ``hang_up``: close the connection once the request is sent, reading nothing.
    """
    with socket.create_connection((node.server.host, node.server.port), timeout=20) as sock:
        sock.sendall(request)
        if hang_up:
            return Answer(None, [], b"")
        reader = sock.makefile("rb")
        status, headers = _head(reader)
        if status == 100 and then is not None:
            sock.sendall(then)
            status, headers = _head(reader)
        length = int(dict(headers).get("content-length", "0"))
        return Answer(status, headers, reader.read(length))


def _head(reader: Any) -> tuple[int, list[tuple[str, str]]]:
    status = int(reader.readline().split()[1])
    headers = []
    while (line := reader.readline().rstrip(b"\r\n")) != b"":
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.lower(), value.strip()))
    return status, headers


def _request(
    method: str = "POST", body: bytes = b"", headers: list[tuple[str, str]] | None = None, *, length: bool = True
) -> bytes:
    lines = [f"{method} /v1/hlr/sync HTTP/1.1", "Host: test"]
    lines += [f"{name}: {value}" for name, value in headers or []]
    if length:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _numbers(*numbers: str) -> bytes:
    return json.dumps({"numbers": list(numbers)}).encode()


JSON = ("Content-Type", "application/json")


@dataclass(frozen=True)
class Case:
    """One request of the corpus: its bytes built for a node (whose accounts' credentials differ)."""

    name: str
    build: Callable[[Node], bytes]
    then: bytes | None = None
    hang_up: bool = False


def _auth(account: str) -> Callable[[Node], tuple[str, str]]:
    return lambda node: ("Authorization", node.basic(account))


def _post(
    body: bytes, *extra: tuple[str, str], account: str | None = "rich", content_type: bool = True
) -> Callable[[Node], bytes]:
    def build(node: Node) -> bytes:
        headers = [_auth(account)(node)] if account else []
        return _request("POST", body, [*headers, *([JSON] if content_type else []), *extra])

    return build


def _raw(method: str, body: bytes, extra: Callable[[Node], list[tuple[str, str]]], **options: bool) -> Case:
    return Case(f"{method} {body[:20]!r}", lambda node: _request(method, body, extra(node), **options))


DEEP = b'{"numbers": ["+37251000001"], "x": ' + b"[" * 100 + b"]" * 100 + b"}"
TOO_MANY = _numbers(*(f"+3725100{index:04d}" for index in range(DEFAULTS.max_numbers_per_request + 1)))
KEY = ("Idempotency-Key", '"c0ffee00-0000-4000-8000-000000000001"')
CHUNKED_TOO_LARGE = (
    b"".join(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" for piece in [b" " * 40_000] * 2) + b"0\r\n\r\n"
)

CORPUS = [
    Case("success", _post(_numbers(*NUMBERS))),
    Case("success with a repeated and an invalid number", _post(_numbers(NUMBERS[0], NUMBERS[0], "+3720", "x"))),
    Case("only invalid numbers: nothing charged", _post(_numbers("+3720", "hello"))),
    Case("a client's user agent", _post(_numbers(NUMBERS[1]), ("User-Agent", "messente-api-python/2.0"))),
    Case(
        "charset in the content type",
        _post(_numbers(NUMBERS[2]), ("Content-Type", "application/json; charset=utf-8"), content_type=False),
    ),
    Case(
        "content type in capitals",
        lambda node: _request(
            "POST", _numbers(NUMBERS[0]), [_auth("rich")(node), ("Content-Type", "APPLICATION/JSON; charset=utf-8")]
        ),
    ),
    Case(
        "a client's valid X-Request-Id",
        _post(_numbers(NUMBERS[0]), ("X-Request-Id", "0c4a7b3e-8f9d-4f51-9a43-3b5e4c1f0a11")),
    ),
    Case("a client's invalid X-Request-Id", _post(_numbers(NUMBERS[0]), ("X-Request-Id", "../../etc/passwd\x7f"))),
    Case("an untrusted X-Forwarded-For", _post(_numbers(NUMBERS[0]), ("X-Forwarded-For", "203.0.113.9, ::1, junk"))),
    Case("101: no credentials", _post(_numbers(*NUMBERS), account=None)),
    Case(
        "101: a wrong password",
        lambda node: _request(
            "POST",
            _numbers(*NUMBERS),
            [
                (
                    "Authorization",
                    "Basic " + base64.b64encode(f"{node.accounts['rich'].api_username}:wrong".encode()).decode(),
                ),
                JSON,
            ],
        ),
    ),
    Case(
        "101: an unknown user with control characters",
        lambda node: _request(
            "POST",
            _numbers(*NUMBERS),
            [("Authorization", "Basic " + base64.b64encode(b"nobody\x1b[31m:x").decode()), JSON],
        ),
    ),
    Case(
        "101: an unknown user",
        lambda node: _request(
            "POST", _numbers(*NUMBERS), [("Authorization", "Basic " + base64.b64encode(b"nobody:x").decode()), JSON]
        ),
    ),
    Case(
        "101: malformed Basic",
        lambda node: _request("POST", _numbers(*NUMBERS), [("Authorization", "Basic !!!"), JSON]),
    ),
    Case(
        "101: a Bearer token",
        lambda node: _request("POST", _numbers(*NUMBERS), [("Authorization", "Bearer abc"), JSON]),
    ),
    Case("102: no content type", _post(_numbers(*NUMBERS), content_type=False)),
    Case("102: a wrong content type", _post(_numbers(*NUMBERS), ("Content-Type", "text/plain"), content_type=False)),
    Case("102: an empty body", _post(b"")),
    Case("102: a blank body", _post(b"  \n ")),
    Case("102: not JSON", _post(b"{numbers: 1")),
    Case("102: invalid UTF-8", _post(b'{"numbers": ["\xff\xfe"]}')),
    Case("102: the wrong shape", _post(b'{"numbers": "+37251000001"}')),
    Case("102: a negative max_age", _post(b'{"numbers": ["+37251000001"], "max_age": -1}')),
    Case("102: no numbers", _post(b'{"numbers": []}')),
    Case("102: too deep", _post(DEEP)),
    Case("103: too many numbers", _post(TOO_MANY)),
    Case("104: no credits", _post(_numbers(*NUMBERS), account="poor")),
    Case("104: no credits, only invalid numbers", _post(_numbers("+3720"), account="poor")),
    Case("413: declared too large", _post(b"{}" + b" " * (DEFAULTS.max_body_bytes + 1))),
    Case(
        "413: chunks past the limit",
        lambda node: _request(
            "POST", CHUNKED_TOO_LARGE, [_auth("rich")(node), JSON, ("Transfer-Encoding", "chunked")], length=False
        ),
    ),
    Case(
        "chunked success",
        lambda node: _request(
            "POST",
            b"1a\r\n"
            + _numbers(NUMBERS[0])[:26]
            + b"\r\n"
            + f"{len(_numbers(NUMBERS[0])) - 26:x}\r\n".encode()
            + _numbers(NUMBERS[0])[26:]
            + b"\r\n0\r\n\r\n",
            [_auth("rich")(node), JSON, ("Transfer-Encoding", "chunked")],
            length=False,
        ),
    ),
    Case("idempotency: first", _post(_numbers(*NUMBERS), KEY)),
    Case("idempotency: replayed", _post(_numbers(*NUMBERS), KEY)),
    Case("idempotency: another body", _post(_numbers(NUMBERS[0]), KEY)),
    Case("idempotency: another account's key is its own", _post(_numbers(NUMBERS[0]), KEY, account="other")),
    Case("idempotency: a malformed key", _post(_numbers(*NUMBERS), ("Idempotency-Key", '"unterminated'))),
    Case("idempotency: two keys", _post(_numbers(*NUMBERS), KEY, ("Idempotency-Key", '"other"'))),
    Case(
        "idempotency: 104 is not remembered", _post(_numbers(*NUMBERS), ("Idempotency-Key", "k-poor"), account="poor")
    ),
    Case(
        "Expect: 100-continue",
        lambda node: _request(
            "POST",
            b"",
            [_auth("rich")(node), JSON, ("Expect", "100-continue"), ("Content-Length", str(len(_numbers(*NUMBERS))))],
            length=False,
        ),
        then=_numbers(*NUMBERS),
    ),
    Case(
        "Expect: 100-continue, no credentials",
        lambda node: _request(
            "POST",
            b"",
            [JSON, ("Expect", "100-continue"), ("Content-Length", str(len(_numbers(*NUMBERS))))],
            length=False,
        ),
        then=_numbers(*NUMBERS),
    ),
    _raw("HEAD", b"", lambda node: [_auth("rich")(node)]),
    _raw("GET", b"", lambda node: [_auth("rich")(node)]),
    _raw("PUT", _numbers(*NUMBERS), lambda node: [_auth("rich")(node), JSON]),
    Case(
        "a client that hangs up mid-body",
        lambda node: _request(
            "POST", b'{"numbers": [', [_auth("rich")(node), JSON, ("Content-Length", "200")], length=False
        ),
        hang_up=True,
    ),
    Case("after the hang-up", _post(_numbers(*NUMBERS))),
]

# The limits: the per-IP burst, the per-account burst and a 401 giving its account's token back.
LIMITED_CORPUS = [
    Case("account token 1", _post(_numbers(NUMBERS[0]))),
    Case(
        "a wrong password spends a token and gets it back",
        lambda node: _request(
            "POST",
            _numbers(NUMBERS[0]),
            [
                (
                    "Authorization",
                    "Basic " + base64.b64encode(f"{node.accounts['rich'].api_username}:wrong".encode()).decode(),
                ),
                JSON,
            ],
        ),
    ),
    Case("account token 2", _post(_numbers(NUMBERS[0]))),
    Case("429: the account's rate", _post(_numbers(NUMBERS[0]))),
    Case("other account", _post(_numbers(NUMBERS[1]), account="other")),
    Case("ip token 6", _post(_numbers(NUMBERS[1]), account="other")),
    Case("429: the address's rate", _post(_numbers(NUMBERS[1]), account="other")),
    Case("429: the address's rate, no credentials", _post(_numbers(NUMBERS[1]), account=None)),
]


def _metrics(node: Node) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The request path's samples; latency by count only (its sums and buckets are times)."""
    # From another loopback address: the corpus's own address may be out of its per-IP allowance.
    with httpx.Client(transport=httpx.HTTPTransport(local_address=SCRAPER), timeout=10) as client:
        text_ = client.get(node.server.url + "/metrics").text
    samples = {}
    for family in text_string_to_metric_families(text_):
        for sample in family.samples:
            if sample.name.startswith("numlookup_http_request_duration_seconds") and not sample.name.endswith("_count"):
                continue
            if sample.name.endswith("_created") or sample.name.startswith("numlookup_charge_batch"):
                continue  # when a series began; how a turn's charges were grouped (timing)
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _delta(before: dict[Any, float], after: dict[Any, float]) -> dict[Any, float]:
    return {key: value - before.get(key, 0.0) for key, value in after.items() if value != before.get(key, 0.0)}


ID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
DURATION = re.compile(r" [0-9.]+ms ")
CHECKED_AT = re.compile(rb'"checkedAt":"[^"]*"')


def _normal(answer: Answer) -> tuple[int | None, list[tuple[str, str]], bytes]:
    headers = [(name, "<id>" if name == "x-request-id" else value) for name, value in answer.headers if name != "date"]
    body = CHECKED_AT.sub(b'"checkedAt":"<t>"', ID.sub(b"<id>", answer.body))
    return answer.status, headers, body


def _log_records(node: Node) -> list[dict[str, Any]]:
    """The request log's lines and the app's error records for the lookup path, without times, ids and durations."""
    records = []
    for line in node.server.log_path.read_text().splitlines():
        record = json.loads(line)
        if record["logger"] not in ("numlookup.access", "numlookup.api"):
            continue
        if record.get("path") in ("/healthz", "/metrics"):
            continue
        for volatile in ("time", "pid", "request_id", "duration_ms"):
            record.pop(volatile, None)
        record["message"] = DURATION.sub("<ms>", record["message"])
        for name, creds in node.accounts.items():  # each node's usernames are its own random ones
            record["message"] = record["message"].replace(creds.api_username, f"<{name}>")
            if record.get("username") == creds.api_username:
                record["username"] = f"<{name}>"
        if "traceback" in record:
            record["traceback"] = record["traceback"].strip().splitlines()[-1]  # the exception, not the frames
        records.append(record)
    return records


def _ledger(node: Node) -> list[tuple[Any, ...]]:
    columns = [c for c in ledger.c if c.name not in ("id", "request_id", "created_at")]
    with node.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(select(*columns).order_by(ledger.c.id))]


def _run(
    node: Node, corpus: list[Case], *, ledger_rows: bool = True
) -> tuple[list[Any], list[Any], dict[Any, float], list[Any]]:
    before = _metrics(node)
    answers = []
    for case in corpus:
        answer = _exchange(node, case.build(node), then=case.then, hang_up=case.hang_up)
        answers.append((case.name, _normal(answer)))
        if case.hang_up:
            time.sleep(0.5)  # the server notices the hang-up and ends the request: its line is then written
    time.sleep(0.3)  # the last request's line is written in the turn after its response
    return answers, _log_records(node), _delta(before, _metrics(node)), _ledger(node) if ledger_rows else []


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Node, Node]]:
    fused = _start(Server, tmp_path_factory.mktemp("fused"), {})
    general = _start(GeneralServer, tmp_path_factory.mktemp("general"), {})
    yield next(fused), next(general)
    for started in (fused, general):
        next(started, None)


def _assert_same(fused: tuple[Any, ...], general: tuple[Any, ...]) -> None:
    answers, logs, metrics, rows = fused
    for (name, got), (_, want) in zip(answers, general[0], strict=True):
        assert got == want, name
    assert logs == general[1]
    assert metrics == general[2]
    assert rows == general[3]


def test_the_fused_edge_answers_the_corpus_as_the_general_stack(nodes: tuple[Node, Node]) -> None:
    fused, general = nodes
    results = _run(fused, CORPUS), _run(general, CORPUS)
    _assert_same(*results)
    answers = dict(results[0][0])
    # The corpus reaches what it is meant to: the contract's codes and the edge's refusals.
    statuses = {name: answer[0] for name, answer in answers.items()}
    assert statuses["success"] == 200 and statuses["101: no credentials"] == 401
    assert statuses["102: too deep"] == 400 and statuses["103: too many numbers"] == 400
    assert statuses["104: no credits"] == 402 and statuses["413: declared too large"] == 413
    assert statuses["413: chunks past the limit"] == 413 and statuses["HEAD b''"] == 405
    assert statuses["idempotency: another body"] == 422 and statuses["Expect: 100-continue"] == 200
    assert statuses["a client that hangs up mid-body"] is None
    assert ("idempotent-replayed", "true") in answers["idempotency: replayed"][1]
    logs = results[0][1]
    assert any(record.get("status") == 500 and record["logger"] == "numlookup.access" for record in logs)  # hang-up
    assert any(record.get("auth_failure") for record in logs)
    assert len(results[0][3]) >= 8  # the ledger rows compared: every charged request's


def test_a_database_failure_is_the_same_clean_500(nodes: tuple[Node, Node]) -> None:
    def broken(node: Node) -> tuple[Any, ...]:
        with node.engine.begin() as conn:
            conn.execute(text("ALTER TABLE ledger RENAME TO ledger_away"))
        try:
            return _run(node, [Case("500", _post(_numbers(*NUMBERS)))], ledger_rows=False)[:3]
        finally:
            with node.engine.begin() as conn:
                conn.execute(text("ALTER TABLE ledger_away RENAME TO ledger"))

    fused, general = nodes
    results = broken(fused), broken(general)
    assert results[0][0] == results[1][0] and results[0][0][0][1][0] == 500
    assert results[0][1] == results[1][1] and results[0][2] == results[1][2]


def test_the_limits_refuse_alike(tmp_path_factory: pytest.TempPathFactory) -> None:
    fused = _start(Server, tmp_path_factory.mktemp("fused-limited"), LIMITED)
    general = _start(GeneralServer, tmp_path_factory.mktemp("general-limited"), LIMITED)
    try:
        results = _run(next(fused), LIMITED_CORPUS), _run(next(general), LIMITED_CORPUS)
    finally:
        for started in (fused, general):
            next(started, None)
    _assert_same(*results)
    statuses = [answer[0] for _, answer in results[0][0]]
    assert statuses == [200, 401, 200, 429, 200, 200, 429, 429]


class AsgiEdgeServer(Server):
    """``numlookup serve`` whose server calls the fused edge as an ASGI app (``tests.e2e.asgi_edge_server``)."""

    module = "tests.e2e.asgi_edge_server"


@dataclass(frozen=True)
class WireCase:
    """Bytes sent on one connection in steps, each followed by the number of responses to read before the next."""

    name: str
    steps: Callable[[Node], list[tuple[bytes, int]]]


def _once(build: Callable[[Node], bytes], responses: int = 1) -> Callable[[Node], list[tuple[bytes, int]]]:
    return lambda node: [(build(node), responses)]


def _version(request: bytes, version: bytes) -> bytes:
    return request.replace(b" HTTP/1.1\r\n", b" " + version + b"\r\n", 1)


def _header(request: bytes, line: bytes) -> bytes:
    head, _, body = request.partition(b"\r\n\r\n")
    return head + b"\r\n" + line + b"\r\n\r\n" + body


LOOKUP = _post(_numbers(*NUMBERS))
WIRE_CORPUS = [
    WireCase("ok", _once(LOOKUP)),
    WireCase("400: not JSON", _once(_post(b"{numbers: 1"))),
    WireCase(
        "400: a wrong content type",
        _once(_post(_numbers(*NUMBERS), ("Content-Type", "text/plain"), content_type=False)),
    ),
    WireCase("401: no credentials", _once(_post(_numbers(*NUMBERS), account=None))),
    WireCase("413: declared too large", _once(_post(b"{}" + b" " * (DEFAULTS.max_body_bytes + 1)))),
    WireCase("idempotency: first", _once(_post(_numbers(*NUMBERS), KEY))),
    WireCase("idempotency: replayed", _once(_post(_numbers(*NUMBERS), KEY))),
    WireCase(
        "pipelined: ok, bad JSON, ok, 401 in one write",
        lambda node: [
            (LOOKUP(node) + _post(b"[")(node) + LOOKUP(node) + _post(_numbers(NUMBERS[0]), account=None)(node), 4)
        ],
    ),
    WireCase(
        "keep-alive, then Connection: close",
        lambda node: [(LOOKUP(node), 1), (_header(LOOKUP(node), b"Connection: close"), 1)],
    ),
    WireCase("HTTP/1.0", _once(lambda node: _version(LOOKUP(node), b"HTTP/1.0"))),
    WireCase(
        "HTTP/1.0 asking for keep-alive",
        _once(lambda node: _header(_version(LOOKUP(node), b"HTTP/1.0"), b"Connection: keep-alive")),
    ),
    WireCase(
        "the body after the head, in a second write",
        lambda node: [(LOOKUP(node).partition(b"\r\n\r\n")[0] + b"\r\n\r\n", 0), (_numbers(*NUMBERS), 1)],
    ),
    WireCase("a query string", _once(lambda node: LOOKUP(node).replace(b" /v1/hlr/sync ", b" /v1/hlr/sync?x=1 ", 1))),
    WireCase(
        "chunked",
        _once(
            lambda node: _request(
                "POST",
                f"{len(_numbers(NUMBERS[0])):x}\r\n".encode() + _numbers(NUMBERS[0]) + b"\r\n0\r\n\r\n",
                [_auth("rich")(node), JSON, ("Transfer-Encoding", "chunked")],
                length=False,
            )
        ),
    ),
    WireCase(
        "Expect: 100-continue",
        lambda node: [
            (
                _request(
                    "POST",
                    b"",
                    [
                        _auth("rich")(node),
                        JSON,
                        ("Expect", "100-continue"),
                        ("Content-Length", str(len(_numbers(*NUMBERS)))),
                    ],
                    length=False,
                ),
                1,
            ),
            (_numbers(*NUMBERS), 1),
        ],
    ),
    WireCase("GET: 405", _once(lambda node: _request("GET", b"", [_auth("rich")(node)]))),
]
CLOSE_WAIT_S = 0.5  # how long a connection that stays open is watched for the server closing it
DATE = re.compile(rb"\r\ndate: [^\r]*\r\n")


def _wire(node: Node, case: WireCase) -> tuple[bytes, bool]:
    """Every byte the server wrote on one connection for ``case``, and whether it closed the connection after."""
    with socket.create_connection((node.server.host, node.server.port), timeout=20) as sock:
        received = b""
        pending = b""  # of ``received``: what no complete response has accounted for yet
        for data, responses in case.steps(node):
            sock.sendall(data)
            while responses:
                while (complete := _response_length(pending)) is None:
                    chunk = sock.recv(65536)
                    assert chunk, f"{case.name}: closed before a whole response: {pending!r}"
                    received += chunk
                    pending += chunk
                pending = pending[complete:]
                responses -= 1
        assert pending == b"", f"{case.name}: more than the responses expected: {pending!r}"
        sock.settimeout(CLOSE_WAIT_S)
        try:
            closed = sock.recv(1) == b""
        except TimeoutError:
            closed = False
    normal = CHECKED_AT.sub(b'"checkedAt":"<t>"', ID.sub(b"<id>", DATE.sub(b"\r\ndate: <date>\r\n", received)))
    return normal, closed


def _response_length(data: bytes) -> int | None:
    """The length of the whole response ``data`` starts with (Content-Length framed, or a 1xx); None: incomplete."""
    head, found, _ = data.partition(b"\r\n\r\n")
    if not found:
        return None
    lines = head.split(b"\r\n")
    if lines[0].split()[1].startswith(b"1"):
        return len(head) + 4
    length = next(
        (int(line.partition(b":")[2]) for line in lines[1:] if line.lower().startswith(b"content-length:")), 0
    )
    return len(head) + 4 + length if len(data) >= len(head) + 4 + length else None


def test_the_plain_path_writes_the_bytes_uvicorn_writes_for_the_edge(tmp_path_factory: pytest.TempPathFactory) -> None:
    """``serving.PlainCycle`` against the same edge through uvicorn's ASGI cycle: every byte but dates and ids."""
    plain = _start(Server, tmp_path_factory.mktemp("plain"), {})
    asgi = _start(AsgiEdgeServer, tmp_path_factory.mktemp("asgi"), {})
    try:
        plain_node, asgi_node = next(plain), next(asgi)
        results = [(_wire(plain_node, case), _wire(asgi_node, case)) for case in WIRE_CORPUS]
        logs = _log_records(plain_node), _log_records(asgi_node)
    finally:
        for started in (plain, asgi):
            next(started, None)
    for case, (got, want) in zip(WIRE_CORPUS, results, strict=True):
        assert got == want, case.name
    assert logs[0] == logs[1]
    wire = {case.name: result[0] for case, result in zip(WIRE_CORPUS, results, strict=True)}
    # The corpus reaches what it is meant to: each status, the closes, the odd requests still answered.
    assert wire["ok"][0].startswith(b"HTTP/1.1 200 OK\r\n") and not wire["ok"][1]
    assert wire["400: not JSON"][0].startswith(b"HTTP/1.1 400 ") and wire["401: no credentials"][0].startswith(
        b"HTTP/1.1 401 "
    )
    assert wire["413: declared too large"][0].startswith(b"HTTP/1.1 413 ") and wire["413: declared too large"][1]
    assert b"idempotent-replayed: true\r\n" in wire["idempotency: replayed"][0]
    pipelined = wire["pipelined: ok, bad JSON, ok, 401 in one write"]
    assert re.findall(rb"HTTP/1\.1 (\d{3}) ", pipelined[0]) == [b"200", b"400", b"200", b"401"] and pipelined[1]
    assert (
        wire["keep-alive, then Connection: close"][1]
        and wire["HTTP/1.0"][1]
        and wire["HTTP/1.0 asking for keep-alive"][1]
    )
    assert b"connection: close\r\n" in wire["HTTP/1.0"][0]
    assert wire["chunked"][0].startswith(b"HTTP/1.1 200 OK\r\n")
    assert wire["Expect: 100-continue"][0].startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n")
    assert wire["the body after the head, in a second write"][0].startswith(b"HTTP/1.1 200 OK\r\n")


def test_the_server_and_the_edge_name_the_same_lifespan_key() -> None:
    from numlookup import serving
    from numlookup.api import sync_edge

    assert serving.SYNC_EDGE_STATE_KEY == sync_edge.LIFESPAN_KEY
