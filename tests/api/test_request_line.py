"""The request log's line written without a record (``logs.json_line``) is the one ``JsonFormatter`` writes.

Why: ``api.request_id.write_request_line`` skips the ``LogRecord`` when the JSON
handler of ``logs.logging_config`` is all a record would reach. The two lines
must be the same bytes, and any other set-up (a capture, a text log, a filter)
must still get records.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Iterator

import pytest

from numlookup.api import request_id
from numlookup.logs import (
    REQUEST_ID,
    JsonFormatter,
    RequestIdFilter,
    TextFormatter,
    TurnStreamHandler,
    direct_json_handler,
    turn_json_handler,
)

FIELDS: list[dict[str, object]] = [
    {
        "request_id": "0c4a7b3e-8f9d-4f51-9a43-3b5e4c1f0a11",
        "method": "POST",
        "path": "/v1/hlr/sync",
        "status": 200,
        "client": "127.0.0.1",
        "account": "acme",
        "auth_failure": None,
        "username": None,
        "duration_ms": 1.234,
    },
    {
        "request_id": "0c4a7b3e-8f9d-4f51-9a43-3b5e4c1f0a12",
        "method": "POST",
        "path": "/v1/hlr/sync",
        "status": 401,
        "client": "2001:db8::1",
        "account": None,
        "auth_failure": "wrong_secret",
        "username": 'n\\x1b[31m"ö\u202e…',
        "duration_ms": 0.5,
    },
    {"request_id": None, "status": 408, "client": None, "duration_ms": 10000.0},  # an unread request, no id
    {"request_id": "x", "method": "GET", "path": "/ünïcode", "status": None, "client": "::1", "duration_ms": 0.0},
    # Falsy but not None: written, as the formatter writes them (only None is left out).
    {
        "request_id": "",
        "method": "",
        "path": "",
        "status": 0,
        "client": "",
        "account": "",
        "auth_failure": "",
        "username": "",
        "duration_ms": 0,
    },
    {"status": 200, "duration_ms": 2.5, "unknown_field": "never written"},  # only the request fields are written
]


@pytest.fixture
def logger() -> Iterator[tuple[logging.Logger, TurnStreamHandler, io.StringIO]]:
    """A logger tree of its own, set up as ``logs.logging_config`` sets the server's: one JSON handler at the top."""
    top = logging.Logger("top", logging.WARNING)
    child = logging.Logger("top.access", logging.INFO)
    child.parent = top
    stream = io.StringIO()
    handler = TurnStreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    top.addHandler(handler)
    yield child, handler, stream


@pytest.fixture
def frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    """One moment for the record and the direct line alike."""
    monkeypatch.setattr(time, "time", lambda: 1_764_680_000.1235)
    monkeypatch.setattr(time, "time_ns", lambda: 1_764_680_000_123_500_000)


@pytest.mark.usefixtures("frozen")
@pytest.mark.parametrize("processes", [True, False])
@pytest.mark.parametrize("fields", FIELDS)
def test_the_direct_line_is_the_formatters(
    fields: dict[str, object],
    processes: bool,
    logger: tuple[logging.Logger, TurnStreamHandler, io.StringIO],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(logging, "logProcesses", processes)  # off: the record's pid is None, written as null
    log, handler, stream = logger
    assert direct_json_handler(log) is handler
    monkeypatch.setattr(request_id, "request_log", log)
    token = REQUEST_ID.set("from-the-context")
    try:
        request_id.write_request_line(dict(fields))  # the direct line
        with monkeypatch.context() as patched:
            patched.setattr(request_id, "turn_json_handler", lambda _logger: None)
            request_id.write_request_line(dict(fields))  # a record, through the formatter
    finally:
        REQUEST_ID.reset(token)
    handler.flush()
    direct, by_record = stream.getvalue().splitlines()
    assert direct == by_record
    assert '"time":"2025-12-02T12:53:20.123Z"' in direct  # the frozen moment, to the millisecond
    if fields.get("request_id") is None:
        assert '"request_id":"from-the-context"' in direct
    assert ('"pid":null' in direct) is not processes


def test_any_other_setup_gets_records(logger: tuple[logging.Logger, TurnStreamHandler, io.StringIO]) -> None:
    log, handler, _ = logger
    top = log.parent
    assert top is not None
    handler.setFormatter(TextFormatter())
    assert direct_json_handler(log) is None  # a text log
    handler.setFormatter(JsonFormatter())
    second = logging.StreamHandler(io.StringIO())
    top.addHandler(second)
    assert direct_json_handler(log) is None  # a second handler (pytest's capture, say)
    top.removeHandler(second)
    log.addFilter(lambda record: True)
    assert direct_json_handler(log) is None  # a filter that may change or drop the record
    log.filters.clear()
    assert direct_json_handler(log) is handler
    quiet = logging.Logger("top.quiet", logging.WARNING)
    quiet.parent = top
    assert direct_json_handler(quiet) is None  # the request log is off


def test_the_request_log_writes_records_under_a_capture(caplog: pytest.LogCaptureFixture) -> None:
    """With pytest's capture on the root logger, the request log still makes records: the capture sees them."""
    caplog.set_level(logging.INFO, logger="numlookup.access")
    request_id.write_request_line(dict(FIELDS[0]))
    [record] = [r for r in caplog.records if r.name == "numlookup.access"]
    assert record.getMessage() == "POST /v1/hlr/sync 200 1.2ms client=127.0.0.1 account=acme"


def test_the_handler_is_found_again_once_its_turn_is_written(
    logger: tuple[logging.Logger, TurnStreamHandler, io.StringIO],
) -> None:
    """Found once for the lines of a loop turn; a turn's write, or a flush, has it found again."""
    log, handler, stream = logger
    top = log.parent
    assert top is not None
    second = logging.StreamHandler(io.StringIO())

    async def turns() -> list[TurnStreamHandler | None]:
        found = [turn_json_handler(log)]
        handler.emit_line("first")  # kept for the turn's write
        top.addHandler(second)  # in the middle of the turn, without a flush
        found.append(turn_json_handler(log))  # this turn's lines still go where it began
        await asyncio.sleep(0)  # the turn's write
        found.append(turn_json_handler(log))  # a second handler now: records
        top.removeHandler(second)
        found.append(turn_json_handler(log))
        handler.emit_line("second")
        handler.flush()  # what reconfiguring logging does to the old handlers
        top.addHandler(second)
        found.append(turn_json_handler(log))
        return found

    assert asyncio.run(turns()) == [handler, handler, None, handler, None]
    assert stream.getvalue().splitlines() == ["first", "second"]
    top.removeHandler(second)
    assert turn_json_handler(log) is handler  # no loop: the chain is walked each time
    top.addHandler(second)
    assert turn_json_handler(log) is None
