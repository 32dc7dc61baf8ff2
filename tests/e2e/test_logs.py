"""Structured logs: a real server (two workers) writes one JSON object per line, requests carry their ids.

Refused logins say why, with the username presented and never the secret; a body
the decoder refuses, however deeply nested, is a 400 logged at info, not an error.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from numlookup.accounts import get_account, set_enabled
from numlookup.api.errors import UNAUTHORIZED_DESCRIPTION
from numlookup.api.nesting import MAX_NESTING
from numlookup.api.request_id import USERNAME_LOG_CHARACTERS, _log_request
from numlookup.logs import REQUEST_ID, RequestIdFilter, TextFormatter, resolve_format
from tests.e2e.conftest import Live, start_live

HEADERS = {"Content-Type": "application/json"}
SYNC = "/v1/hlr/sync"


@pytest.fixture
def json_live(tmp_path: Path) -> Iterator[Live]:
    yield from start_live(tmp_path / "logs", workers=2, env={"NUMLOOKUP_LOG_FORMAT": "json"})


@pytest.fixture(scope="module")
def json_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """One worker logging JSON, shared by the tests that read a request's line while the server runs."""
    yield from start_live(tmp_path_factory.mktemp("json-logs"), env={"NUMLOOKUP_LOG_FORMAT": "json"})


def _records(path: Path) -> list[dict[str, Any]]:
    """Every line of the server's log as JSON: a line that is not one fails the test."""
    records = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"log line {number} is not JSON: {line!r}")
        assert isinstance(record, dict), line
        records.append(record)
    return records


def _request_line(live: Live, response: httpx.Response, timeout: float = 10.0) -> dict[str, Any]:
    """The request log's line for ``response``: written after the response went out, so it may take a moment."""
    request_id = response.headers["x-request-id"]
    deadline = time.monotonic() + timeout
    while True:
        lines = [
            r
            for r in _records(live.server.log_path)
            if r["logger"] == "numlookup.access" and r.get("request_id") == request_id
        ]
        if lines or time.monotonic() > deadline:
            assert len(lines) == 1, f"{len(lines)} request log lines for {request_id}"
            return lines[0]
        time.sleep(0.05)


def _basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {**HEADERS, "Authorization": f"Basic {token}"}


def _rename_ledger(live: Live, old: str, new: str) -> None:
    with live.engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))


def test_json_logs_name_every_request_by_its_id(json_live: Live) -> None:
    live = json_live
    creds = live.account()
    with live.client(creds) as client:
        ok = client.post("/v1/hlr/sync", json={"numbers": ["+37251000001"]}, headers=HEADERS)
        # The charge cannot be written: an unexpected error, answered 500 and logged with its traceback.
        _rename_ledger(live, "ledger", "ledger_away")
        try:
            failed = client.post("/v1/hlr/sync", json={"numbers": ["+37251000002"]}, headers=HEADERS)
        finally:
            _rename_ledger(live, "ledger_away", "ledger")
    with live.client() as anonymous:
        wrong = anonymous.post(
            "/v1/hlr/sync", json={"numbers": ["+37251000001"]}, headers=HEADERS, auth=(creds.api_username, "wrong")
        )
        missing = anonymous.get("/no/such/route")
    assert [ok.status_code, failed.status_code, wrong.status_code, missing.status_code] == [200, 500, 401, 404]
    assert failed.json()["error"]["code"] == 103
    live.server.stop()  # a graceful stop writes every line and shows the shutdown in the log

    records = _records(live.server.log_path)
    for record in records:
        assert {"time", "level", "logger", "message", "pid"} <= record.keys(), record
        assert datetime.fromisoformat(record["time"]).utcoffset() is not None
    requests = {r["request_id"]: r for r in records if r["logger"] == "numlookup.access"}
    expected = [
        (ok, "POST", "/v1/hlr/sync", creds.name),
        (failed, "POST", "/v1/hlr/sync", creds.name),
        (wrong, "POST", "/v1/hlr/sync", None),
        (missing, "GET", "/no/such/route", None),
    ]
    for response, method, path, account in expected:
        request_id = response.headers["x-request-id"]
        line = requests[request_id]
        assert (line["method"], line["path"], line["status"], line["client"]) == (
            method,
            path,
            response.status_code,
            "127.0.0.1",
        )
        assert line.get("account") == account
        assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
        assert line["level"] == "info"
    assert ok.json()["request_id"] == ok.headers["x-request-id"]

    # The 500's traceback is logged, with the request's id, on one line.
    [error] = [r for r in records if r["level"] == "error" and r.get("request_id") == failed.headers["x-request-id"]]
    assert error["traceback"].startswith("Traceback") and "ledger" in error["traceback"]
    # uvicorn's own records come through the same formatter, from the supervisor and both workers;
    # its access log is replaced by ours.
    uvicorn_messages = [r["message"] for r in records if r["logger"].startswith("uvicorn")]
    assert sum("Application startup complete" in m for m in uvicorn_messages) == 2
    assert any("Shutting down" in m for m in uvicorn_messages)
    assert len({r["pid"] for r in records}) == 3
    # Each worker's last words, logged in its loop's last turn, are written before the process exits.
    finished = [r["pid"] for r in records if r["message"].startswith("Finished server process")]
    workers = {r["pid"] for r in records if "Application startup complete" in r["message"]}
    assert workers <= set(finished), (finished, workers)
    assert not [r for r in records if r["logger"] == "uvicorn.access"]


def test_text_format_and_auto_choice() -> None:
    record = logging.LogRecord("numlookup.api", logging.WARNING, __file__, 1, "slow %s", ("source",), None)
    token = REQUEST_ID.set("rid-1")
    try:
        assert RequestIdFilter().filter(record)
    finally:
        REQUEST_ID.reset(token)
    line = TextFormatter().format(record)
    assert line.endswith("WARNING numlookup.api: slow source request_id=rid-1")

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert resolve_format("auto", Terminal()) == "text"
    assert resolve_format("auto", io.StringIO()) == "json"
    assert resolve_format("text", io.StringIO()) == "text"


# ------------------------------------------------------------------ refused logins


def test_every_refused_login_is_logged_with_its_reason_and_never_the_secret(json_server: Live) -> None:
    live = json_server
    good, disabled, elsewhere = live.account(), live.account(), live.account(allow=["203.0.113.0/24"])
    set_enabled(live.engine, disabled.name, False)
    wrong_secret = "Wr0ngSecret" + good.api_password[::-1]
    hostile = "evil\u2028name\x85\u202e" + "x" * 200  # a line separator, a C1 control, a bidi override, too long
    attempts: list[tuple[dict[str, str], str, str | None]] = [
        (HEADERS, "missing_credentials", None),
        ({**HEADERS, "Authorization": "Bearer " + good.api_password}, "malformed_credentials", None),
        ({**HEADERS, "Authorization": "Basic not-base64!"}, "malformed_credentials", None),
        (_basic("nosuchuser", good.api_password), "unknown_username", "nosuchuser"),
        (_basic(good.api_username, wrong_secret), "wrong_secret", good.api_username),
        (_basic(disabled.api_username, disabled.api_password), "account_disabled", disabled.api_username),
        (_basic(elsewhere.api_username, elsewhere.api_password), "ip_not_allowed", elsewhere.api_username),
        (_basic(hostile, good.api_password), "unknown_username", None),
    ]
    bodies = set()
    with httpx.Client(base_url=live.url, timeout=30) as client:
        for headers, reason, username in attempts:
            response = client.post(SYNC, json={"numbers": ["+37251000001"]}, headers=headers)
            assert response.status_code == 401 and response.headers["www-authenticate"] == 'Basic realm="numlookup"'
            assert response.json()["error"] == {"code": 101, "description": UNAUTHORIZED_DESCRIPTION}
            bodies.add(response.content)  # the client learns nothing of the reason
            line = _request_line(live, response)
            assert (line["level"], line["status"], line["auth_failure"]) == ("info", 401, reason), line
            assert "account" not in line
            if username is not None:
                assert line["username"] == username
            elif reason != "unknown_username":
                assert "username" not in line  # nothing readable was presented
            else:  # the hostile one: escaped and cut, whatever the client sent
                shown = line["username"]
                assert shown.startswith("evil\\u2028name\\x85\\u202exxx") and shown.endswith("x…")
                assert shown.isprintable() and len(shown) < USERNAME_LOG_CHARACTERS + 20
        ok = client.post(SYNC, json={"numbers": ["+37251000001"]}, headers=_basic(good.api_username, good.api_password))
    assert len(bodies) == 1
    assert ok.status_code == 200
    success = _request_line(live, ok)
    assert success["account"] == good.name and "auth_failure" not in success and "username" not in success

    log = live.server.log_path.read_text()
    for secret in (good.api_password, wrong_secret, disabled.api_password, elsewhere.api_password):
        assert secret not in log
    for headers, _reason, _username in attempts:  # nor the Authorization header that carried it
        assert "Authorization" not in headers or headers["Authorization"].split()[-1] not in log


def test_the_text_request_line_names_the_refusal_escaped(caplog: pytest.LogCaptureFixture) -> None:
    """The text log is where a raw line separator would forge a line: it is written escaped."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": SYNC,
        "client": ("192.0.2.1", 40000),
        "state": {"request_id": "rid-2", "auth_failure": "wrong_secret", "username": "a\nb\u2028c"},
    }
    with caplog.at_level(logging.INFO, logger="numlookup.access"):
        _log_request(scope, 401, time.perf_counter())
    [record] = caplog.records
    message = record.getMessage()
    assert message.endswith("client=192.0.2.1 account=- auth_failure=wrong_secret username=a\\nb\\u2028c")
    assert "\n" not in message and "\u2028" not in message


# ------------------------------------------------------------------ bodies the decoder refuses


def test_deeply_nested_bodies_are_a_400_logged_as_info(json_server: Live) -> None:
    """1,000 levels in a key the schema ignores once gave a 500 with a RecursionError traceback."""
    live = json_server
    creds = live.account()
    before = get_account(live.engine, creds.name).balance
    prefix = b'{"numbers": ["+37251000001"], "x": '
    refused = [
        prefix + b"[" * 1000 + b"]" * 1000 + b"}",
        prefix + b'{"a": ' * 1000 + b"1" + b"}" * 1000 + b"}",
        b'{"numbers": ' + b"[" * 1000 + b"]" * 1000 + b"}",
        b"[" * 20_000 + b"]" * 20_000,
        prefix + b"[" * MAX_NESTING + b"]" * MAX_NESTING + b"}",  # one level past the limit
    ]
    with live.client(creds) as client:
        for body in refused:
            response = client.post(SYNC, content=body, headers=HEADERS)
            assert response.status_code == 400, response.text
            error = response.json()
            assert error["error"]["code"] == 102 and error["errors"] == [{"error": error["error"]}]
            assert f"more than {MAX_NESTING} levels" in error["error"]["description"]
            line = _request_line(live, response)
            assert (line["level"], line["status"], line["account"]) == ("info", 400, creds.name)
        assert get_account(live.engine, creds.name).balance == before  # refused: nothing charged
        at_limit = prefix + b"[" * (MAX_NESTING - 1) + b"]" * (MAX_NESTING - 1) + b"}"
        accepted = client.post(SYNC, content=at_limit, headers=HEADERS)
    assert accepted.status_code == 200, accepted.text
    assert [r["number"] for r in accepted.json()["result"]] == ["+37251000001"]
    assert not [r for r in _records(live.server.log_path) if r["level"] in ("error", "critical")]
