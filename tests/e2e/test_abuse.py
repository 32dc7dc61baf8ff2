"""Abuse protection against a running server: rate limits, auth-failure throttling,
trusted proxies, body size and body deadline, the header deadline, and readiness.

Loopback holds every 127.x address, so each test speaks from source addresses of
its own and the limits of one test never leak into another. The server runs with
small limits so that exceeding them takes a handful of requests.
"""

from __future__ import annotations

import base64
import json
import select
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from numlookup import serving
from numlookup.accounts import NewCredentials, get_account
from numlookup.api import refusals
from numlookup.api.limits import AuthFailures, TokenBuckets
from numlookup.api.proxies import TrustedProxies, limit_key
from tests.e2e.conftest import Live, start_live
from tests.support import RawResponse, metric, read_response

SYNC = "/v1/hlr/sync"
JSON = {"Content-Type": "application/json", "Accept": "application/json"}
ESTONIA = "+37251000001"
PROXY = "127.0.0.10"
IP_BURST = 8
ACCOUNT_BURST = 3
AUTH_FAILURES = 3
PENALTY = 2.0
BODY_TIMEOUT = 1.0
HEADER_TIMEOUT = 3.0
KEEP_ALIVE = 2
LIMITS = {
    # Slow refill, so a test's requests meet the burst, not the rate.
    "NUMLOOKUP_RATE_LIMIT_PER_IP": "0.2",
    "NUMLOOKUP_RATE_LIMIT_PER_IP_BURST": str(IP_BURST),
    "NUMLOOKUP_RATE_LIMIT_PER_ACCOUNT": "0.2",
    "NUMLOOKUP_RATE_LIMIT_PER_ACCOUNT_BURST": str(ACCOUNT_BURST),
    "NUMLOOKUP_AUTH_FAILURE_LIMIT": str(AUTH_FAILURES),
    "NUMLOOKUP_AUTH_FAILURE_WINDOW_SECONDS": "60",
    "NUMLOOKUP_AUTH_FAILURE_PENALTY_SECONDS": str(PENALTY),
    "NUMLOOKUP_TRUSTED_PROXIES": json.dumps([PROXY + "/32"]),
    "NUMLOOKUP_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
    "NUMLOOKUP_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
    "NUMLOOKUP_TIMEOUT_KEEP_ALIVE_SECONDS": str(KEEP_ALIVE),
}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    yield from start_live(tmp_path_factory.mktemp("guarded"), env=LIMITS)


def client(live: Live, source: str, creds: NewCredentials | None = None, password: str | None = None) -> httpx.Client:
    """A client speaking from ``source``; ``password`` overrides the right one."""
    auth = (creds.api_username, password or creds.api_password) if creds else None
    return httpx.Client(base_url=live.url, auth=auth, timeout=30, transport=httpx.HTTPTransport(local_address=source))


def lookup(c: httpx.Client, headers: dict[str, str] | None = None) -> httpx.Response:
    return c.post(SYNC, json={"numbers": [ESTONIA]}, headers={**JSON, **(headers or {})})


def assert_error(response: httpx.Response | RawResponse, http_status: int, code: int) -> str:
    assert response.status_code == http_status, response.text
    assert response.headers["content-type"].startswith("application/json")
    uuid.UUID(response.headers["x-request-id"])
    body = response.json()
    assert set(body) == {"error", "errors"} and body["errors"] == [{"error": body["error"]}]
    assert body["error"]["code"] == code
    return str(body["error"]["description"])


def assert_429(response: httpx.Response, fragment: str) -> int:
    """429, code 106, the limit named, and a Retry-After in whole seconds; returns it."""
    assert fragment in assert_error(response, 429, 106)
    retry = int(response.headers["retry-after"])
    assert retry >= 1
    return retry


def balance(live: Live, creds: NewCredentials) -> int:
    return get_account(live.engine, creds.name).balance


# ------------------------------------------------------------------ rate limits


def test_per_ip_limit_answers_429_and_spares_other_addresses(guarded: Live) -> None:
    accounts = [guarded.account() for _ in range(3)]  # taken in turn, so no account's own limit trips
    for i in range(IP_BURST):
        with client(guarded, "127.0.0.31", accounts[i % 3]) as c:
            assert lookup(c).status_code == 200
    third = guarded.account()
    before = balance(guarded, third)
    with client(guarded, "127.0.0.31", third) as c:
        retry = assert_429(lookup(c), "client address")
    assert retry <= 1 / 0.2 + 1
    assert balance(guarded, third) == before  # refused before anything was charged
    with client(guarded, "127.0.0.32", third) as c:
        assert lookup(c).status_code == 200


def test_per_account_limit_follows_the_account_across_addresses(guarded: Live) -> None:
    creds, other = guarded.account(), guarded.account()
    with client(guarded, "127.0.0.21", creds) as c:
        assert [lookup(c).status_code for _ in range(2)] == [200, 200]
    with client(guarded, "127.0.0.22", creds) as c:
        assert lookup(c).status_code == 200
        assert_429(lookup(c), "account")
    with client(guarded, "127.0.0.22", other) as c:  # the address itself is not limited yet
        assert lookup(c).status_code == 200


def test_wrong_passwords_do_not_spend_an_accounts_allowance(guarded: Live) -> None:
    creds = guarded.account()
    with client(guarded, "127.0.0.23", creds, password="wrong") as c:
        assert [lookup(c).status_code for _ in range(2)] == [401, 401]
    with client(guarded, "127.0.0.24", creds) as c:
        assert [lookup(c).status_code for _ in range(ACCOUNT_BURST)] == [200] * ACCOUNT_BURST


def test_auth_failures_throttle_that_address_only_and_for_a_while(guarded: Live) -> None:
    creds = guarded.account()
    with client(guarded, "127.0.0.41", creds, password="guess") as c:
        assert [lookup(c).status_code for _ in range(AUTH_FAILURES)] == [401] * AUTH_FAILURES
        assert_429(lookup(c), "failed authentications")
    with client(guarded, "127.0.0.41", creds) as c:
        # During the penalty credentials are not even checked: the right ones wait too.
        retry = assert_429(lookup(c), "failed authentications")
        assert retry <= PENALTY + 1
    with client(guarded, "127.0.0.41") as c:  # without credentials there is nothing to guess: the usual 401
        assert_error(lookup(c), 401, 101)
    with client(guarded, "127.0.0.42", creds) as c:
        assert lookup(c).status_code == 200
    time.sleep(PENALTY + 0.2)
    with client(guarded, "127.0.0.41", creds) as c:
        assert lookup(c).status_code == 200


# ------------------------------------------------------------------ trusted proxies


def test_forwarded_for_is_ignored_from_an_untrusted_peer(guarded: Live) -> None:
    creds = guarded.account(allow=["203.0.113.7/32"])
    # 127.0.0.1 is the address uvicorn itself would trust by default: its rewriting must be off.
    for source in ("127.0.0.51", "127.0.0.1"):
        with client(guarded, source, creds) as c:
            assert_error(lookup(c, {"X-Forwarded-For": "203.0.113.7"}), 401, 101)


def test_forwarded_for_is_honoured_from_a_trusted_proxy(guarded: Live) -> None:
    creds = guarded.account(allow=["203.0.113.7/32"])
    with client(guarded, PROXY, creds) as c:
        # The proxy appended the peer it saw (203.0.113.7); whatever is left of it, the client wrote.
        assert lookup(c, {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}).status_code == 200
        assert_error(lookup(c, {"X-Forwarded-For": "203.0.113.7, 198.51.100.9"}), 401, 101)
        # Without the header the proxy itself is the client, and it is not allowed.
        assert_error(lookup(c), 401, 101)


def test_rate_limit_key_follows_the_forwarded_client(guarded: Live) -> None:
    with client(guarded, PROXY) as c:
        for _ in range(IP_BURST):
            assert c.get("/openapi.json", headers={"X-Forwarded-For": "198.51.100.20"}).status_code == 200
        assert_429(c.get("/openapi.json", headers={"X-Forwarded-For": "198.51.100.20"}), "client address")
        # Another client behind the same proxy is not held back by its neighbour.
        assert c.get("/openapi.json", headers={"X-Forwarded-For": "198.51.100.21"}).status_code == 200
    with client(guarded, "127.0.0.52") as c:  # and from an untrusted peer the header names nobody
        assert c.get("/openapi.json", headers={"X-Forwarded-For": "198.51.100.20"}).status_code == 200


# ------------------------------------------------------------------ request bodies


def connect(live: Live, source: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", live.server.port), timeout=10, source_address=(source, 0))
    return sock


def request_head(creds: NewCredentials, length: int | None) -> bytes:
    token = base64.b64encode(f"{creds.api_username}:{creds.api_password}".encode()).decode()
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (
        f"POST {SYNC} HTTP/1.1\r\nHost: numlookup\r\nAuthorization: Basic {token}\r\n"
        f"Content-Type: application/json\r\n{framing}\r\n\r\n"
    ).encode()


def closed(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_413_for_a_declared_length_over_the_limit_before_the_body_is_sent(guarded: Live) -> None:
    creds = guarded.account()
    before = balance(guarded, creds)
    with connect(guarded, "127.0.0.61") as sock:
        sock.sendall(request_head(creds, 10 * 1024 * 1024))  # headers only: the answer must not wait for the body
        response = read_response(sock)
        assert "65536" in assert_error(response, 413, 102)
        assert response.headers["connection"] == "close" and closed(sock)
    assert balance(guarded, creds) == before


def test_413_while_streaming_a_body_without_a_length(guarded: Live) -> None:
    """Chunked, so only counting while reading can stop it; the answer comes long before the client is done."""
    creds = guarded.account()
    before = balance(guarded, creds)
    sent = 0
    with connect(guarded, "127.0.0.62") as sock:
        sock.sendall(request_head(creds, None) + b'e\r\n{"numbers": ["\r\n')
        piece = b"2000\r\n" + b"1" * 0x2000 + b"\r\n"
        try:
            while sent < 8 * 1024 * 1024 and not select.select([sock], [], [], 0.002)[0]:
                sock.sendall(piece)  # paced, so the kernel's buffers do not hide when the server stopped reading
                sent += 0x2000
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped listening: its answer is waiting
        response = read_response(sock)
    assert_error(response, 413, 102)
    assert sent < 2 * 1024 * 1024, f"the server let {sent} bytes in before refusing"
    assert balance(guarded, creds) == before


def test_understated_length_reads_no_further_and_charges_nothing(guarded: Live) -> None:
    """A Content-Length smaller than what follows: the body ends where it says, the rest is not a request."""
    creds = guarded.account()
    before = balance(guarded, creds)
    body = json.dumps({"numbers": [ESTONIA] * 5}).encode() + b" " * (512 * 1024)
    with connect(guarded, "127.0.0.63") as sock:
        sock.sendall(request_head(creds, 20))
        try:
            sock.sendall(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        # The 20 bytes are cut-off JSON (the app's 400) and what follows is not HTTP (uvicorn's
        # 400): whichever answer is written first, the server hangs up instead of buffering.
        assert read_response(sock).status_code == 400
        assert closed(sock)
    assert balance(guarded, creds) == before
    with client(guarded, "127.0.0.63", creds) as c:
        assert lookup(c).status_code == 200


def test_a_refused_request_with_an_unread_body_ends_the_connection(guarded: Live) -> None:
    """Otherwise a client without credentials could stream a body for ever, read and discarded."""
    creds = guarded.account()
    wrong = NewCredentials(creds.name, creds.api_username, "wrong")
    with connect(guarded, "127.0.0.64") as sock:
        sock.sendall(request_head(wrong, None) + b'e\r\n{"numbers": ["\r\n')
        response = read_response(sock)
        assert_error(response, 401, 101)
        assert response.headers["connection"] == "close" and closed(sock)


def test_408_for_a_body_that_does_not_arrive(guarded: Live) -> None:
    creds = guarded.account()
    before = balance(guarded, creds)
    with connect(guarded, "127.0.0.71") as sock:
        start = time.monotonic()
        sock.sendall(request_head(creds, 200) + b'{"numbers": [')
        response = read_response(sock)
        elapsed = time.monotonic() - start
        assert "1 s" in assert_error(response, 408, 106)
        assert BODY_TIMEOUT * 0.9 <= elapsed < BODY_TIMEOUT + 2
        assert closed(sock)
    assert balance(guarded, creds) == before


def test_a_body_within_the_limits_still_works(guarded: Live) -> None:
    creds = guarded.account()
    with connect(guarded, "127.0.0.72") as sock:
        body = json.dumps({"numbers": [ESTONIA]}).encode()
        sock.sendall(request_head(creds, len(body)) + body[:5])
        time.sleep(BODY_TIMEOUT / 3)
        sock.sendall(body[5:])
        response = read_response(sock)
    assert response.status_code == 200, response.text


# ------------------------------------------------------------------ request headers


def timeouts_408(live: Live) -> float:
    try:
        return metric(live.url, "numlookup_http_requests_total", route="unmatched", method="none", status="408")
    except AssertionError:  # not counted yet: the sample appears at its first use
        return 0.0


def request_line(live: Live, request_id: str) -> dict[str, Any]:
    """The server's JSON request log line for ``request_id`` (written as the answer leaves: wait a moment)."""
    deadline = time.monotonic() + 10
    while True:
        for line in live.server.log_path.read_text().splitlines():
            record = json.loads(line)
            if record.get("logger") == "numlookup.access" and record.get("request_id") == request_id:
                return dict(record)
        assert time.monotonic() < deadline, f"no request log line for {request_id}"
        time.sleep(0.05)


def test_408_for_a_header_block_that_does_not_finish(guarded: Live) -> None:
    """Half the headers, then nothing: the server answers 408 (code 106) and closes, instead of waiting for ever."""
    before = timeouts_408(guarded)
    with connect(guarded, "127.0.0.81") as sock:
        start = time.monotonic()
        sock.sendall(f"POST {SYNC} HTTP/1.1\r\nHost: numlookup\r\nContent-Type: appli".encode())
        sock.settimeout(HEADER_TIMEOUT + 10)
        response = read_response(sock)
        elapsed = time.monotonic() - start
        assert "3 s" in assert_error(response, 408, 106)
        assert HEADER_TIMEOUT * 0.9 <= elapsed < HEADER_TIMEOUT + 5
        assert response.headers["connection"] == "close" and closed(sock)
    assert timeouts_408(guarded) == before + 1
    line = request_line(guarded, response.headers["x-request-id"])
    assert (line["level"], line["status"], line["client"]) == ("info", 408, "127.0.0.81")


def test_blank_lines_before_a_request_count_as_its_headers(guarded: Live) -> None:
    """Blank lines begin no request in the parser; trickled, they held a connection open all the same."""
    with connect(guarded, "127.0.0.82") as sock:
        start = time.monotonic()
        while not select.select([sock], [], [], 0.5)[0]:  # a blank line every half second, until the server speaks
            assert time.monotonic() - start < HEADER_TIMEOUT + 5, "the server let the blank lines run on"
            sock.sendall(b"\r\n")
        response = read_response(sock)
    assert_error(response, 408, 106)


def test_headers_sent_slowly_within_the_limit_still_get_their_answer(guarded: Live) -> None:
    creds = guarded.account()
    body = json.dumps({"numbers": [ESTONIA]}).encode()
    head = request_head(creds, len(body))
    pieces = 8
    size = -(-len(head) // pieces)
    with connect(guarded, "127.0.0.83") as sock:
        for i in range(pieces):  # over 2 s in all, with a 3 s limit
            sock.sendall(head[i * size : (i + 1) * size])
            time.sleep(2.0 / pieces)
        sock.sendall(body)
        response = read_response(sock)
    assert response.status_code == 200, response.text
    assert response.json()["result"][0]["number"] == ESTONIA


def test_idle_connections_close_after_the_keep_alive_timeout_without_a_408(guarded: Live) -> None:
    """Before the first request and between requests nothing was sent: idle, so closed quietly."""
    creds = guarded.account()
    with connect(guarded, "127.0.0.84") as sock:  # never sends a byte
        sock.settimeout(KEEP_ALIVE + 10)
        assert sock.recv(1024) == b""
    body = json.dumps({"numbers": [ESTONIA]}).encode()
    with connect(guarded, "127.0.0.84") as sock:
        sock.sendall(request_head(creds, len(body)) + body)
        assert read_response(sock).status_code == 200
        sock.settimeout(KEEP_ALIVE + 10)
        assert sock.recv(1024) == b""  # no 408: waiting for the next request is not sending one slowly


def test_the_server_and_the_app_name_the_same_lifespan_key() -> None:
    assert serving.REFUSALS_STATE_KEY == refusals.LIFESPAN_KEY


# ------------------------------------------------------------------ readiness and documents


def test_readyz_names_the_data_served(guarded: Live) -> None:
    with guarded.client() as c:
        response = c.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "database": "ok", "data": {"ranges": None, "ported": None}}


@pytest.fixture
def doomed(tmp_path: Path) -> Iterator[Live]:
    yield from start_live(tmp_path / "doomed")


def test_readyz_is_503_while_the_database_is_gone(doomed: Live) -> None:
    with doomed.engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE accounts RENAME TO accounts_gone")
    try:
        with doomed.client() as c:
            response = c.get("/readyz")
            description = assert_error(response, 503, 103)
            assert "database" in description and "accounts" not in description
            assert c.get("/healthz").status_code == 200  # alive, just not ready
    finally:
        with doomed.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE accounts_gone RENAME TO accounts")
    with doomed.client() as c:
        assert c.get("/readyz").status_code == 200


def test_openapi_documents_the_refusals_and_readyz(guarded: Live) -> None:
    with guarded.client() as c:
        document = c.get("/openapi.json").json()
    responses = document["paths"]["/v1/hlr/sync"]["post"]["responses"]
    assert {"408", "413", "429"} <= set(responses)
    assert "Retry-After" in responses["429"]["headers"]
    assert set(document["paths"]["/readyz"]["get"]["responses"]) == {"200", "503"}


# ------------------------------------------------------------------ the rules themselves


def test_right_most_untrusted_forwarded_address_is_the_client() -> None:
    proxies = TrustedProxies(["10.0.0.0/8", "2001:db8::/32"])
    assert proxies.client_address("192.0.2.1", ["203.0.113.7"]) == "192.0.2.1"  # untrusted peer: header ignored
    assert proxies.client_address("10.0.0.2", ["1.1.1.1, 203.0.113.7, 10.0.0.3"]) == "203.0.113.7"
    assert proxies.client_address("10.0.0.2", ["1.1.1.1", "203.0.113.7"]) == "203.0.113.7"  # two headers, one list
    assert proxies.client_address("10.0.0.2", []) == "10.0.0.2"
    assert proxies.client_address("10.0.0.2", ["10.0.0.9"]) == "10.0.0.9"  # all ours: the left-most
    assert proxies.client_address("10.0.0.2", ["junk, 10.0.0.9"]) == "10.0.0.9"  # cannot go past what is no address
    assert proxies.client_address("::ffff:10.0.0.2", ["[2001:db9::1]:443"]) == "2001:db9::1"
    alone = TrustedProxies([])  # no proxy trusted: the peer, as its address writes it, whatever the header says
    assert alone.client_address("10.0.0.2", ["203.0.113.7"]) == "10.0.0.2"
    assert alone.client_address("::ffff:10.0.0.2", []) == "10.0.0.2"
    assert alone.client_address("2001:DB8::0001", ["10.0.0.9"]) == "2001:db8::1"
    assert alone.client_address("not-an-address", []) == "not-an-address"  # kept as the socket gave it
    assert alone.client_address(None, ["203.0.113.7"]) is None
    assert alone.client_address("", []) == ""


def test_ipv6_clients_are_limited_per_64() -> None:
    assert limit_key("2001:db8:1:2:aaaa::1") == limit_key("2001:db8:1:2:bbbb::2") == "2001:db8:1:2::/64"
    assert limit_key("192.0.2.1") == "192.0.2.1"


def test_token_bucket_refills_at_its_rate_and_forgets_full_buckets() -> None:
    buckets = TokenBuckets(rate=2.0, burst=3)
    assert [buckets.take("a", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a", 0.0) == pytest.approx(0.5)
    assert buckets.take("a", 0.5) == 0.0  # one token back after 1/rate
    assert buckets.take("b", 0.5) == 0.0  # keys are independent
    buckets.take("c", 10.0)
    assert set(buckets._buckets) == {"c"}  # a and b had refilled: same as no bucket


def test_auth_failures_rule() -> None:
    failures = AuthFailures(limit=3, window=60.0, penalty=30.0)
    for t in (0.0, 1.0):
        failures.failed("x", t)
    assert failures.penalty_left("x", 2.0) == 0.0
    failures.failed("x", 70.0)  # the first two fell out of the window
    assert failures.penalty_left("x", 70.0) == 0.0
    failures.failed("x", 71.0)
    failures.failed("x", 72.0)
    assert failures.penalty_left("x", 72.0) == pytest.approx(30.0)
    assert failures.penalty_left("y", 72.0) == 0.0
    failures.failed("x", 80.0)  # during the penalty: neither counted nor extending it
    assert failures.penalty_left("x", 102.0) == 0.0
    failures.failed("x", 103.0)
    assert failures.penalty_left("x", 103.0) == 0.0  # the count started again from zero
