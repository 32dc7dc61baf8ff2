"""The server's log lines as the handler writes them: once per loop turn, in the records' order, times exact.

``logs.TurnStreamHandler`` keeps the lines logged on an event loop and writes them
at the loop's next turn; these check the stream gets what ``StreamHandler`` would
have written, in the same order, whichever thread logged. ``logs._utc_iso`` makes
each line's time from a per-second prefix; it must print what ``datetime`` prints.
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import time
from datetime import UTC, datetime

import pytest

from numlookup import logs
from numlookup.logs import TurnStreamHandler, _utc_iso, flush_kept_lines, utc_now_iso
from numlookup.results import iso_time


def _logger(stream: io.StringIO) -> tuple[logging.Logger, TurnStreamHandler]:
    handler = TurnStreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger(f"numlookup.test_log_lines.{id(stream)}")
    logger.propagate = False
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    return logger, handler


def test_lines_logged_on_a_loop_are_written_at_its_next_turn_in_order() -> None:
    stream = io.StringIO()
    logger, _ = _logger(stream)

    async def scenario() -> None:
        for n in range(3):
            logger.info("line %d", n)
        assert stream.getvalue() == ""  # kept for the turn's one write
        await asyncio.sleep(0)
        assert stream.getvalue() == "line 0\nline 1\nline 2\n"
        logger.info("line 3")
        await asyncio.sleep(0)
        assert stream.getvalue().endswith("line 2\nline 3\n")

    asyncio.run(scenario())


def test_a_line_from_another_thread_comes_after_the_lines_kept_before_it() -> None:
    stream = io.StringIO()
    logger, _ = _logger(stream)

    async def scenario() -> None:
        logger.info("loop first")
        worker = threading.Thread(target=logger.info, args=("thread second",))
        worker.start()
        worker.join()
        assert stream.getvalue() == "loop first\nthread second\n"  # the thread wrote the kept line first
        logger.info("loop third")
        await asyncio.sleep(0)
        assert stream.getvalue() == "loop first\nthread second\nloop third\n"

    asyncio.run(scenario())


def test_without_a_loop_a_line_is_written_at_once_and_flush_writes_what_is_kept() -> None:
    stream = io.StringIO()
    logger, handler = _logger(stream)
    logger.info("no loop")
    assert stream.getvalue() == "no loop\n"

    async def scenario() -> None:
        logger.info("kept")
        handler.flush()
        assert stream.getvalue() == "no loop\nkept\n"
        await asyncio.sleep(0)
        assert stream.getvalue() == "no loop\nkept\n"  # written once

    asyncio.run(scenario())


def test_many_lines_in_one_turn_are_written_before_the_turn_ends() -> None:
    stream = io.StringIO()
    logger, _ = _logger(stream)

    async def scenario() -> None:
        for n in range(TurnStreamHandler.MAX_KEPT_LINES):
            logger.info("%d", n)
        assert stream.getvalue().count("\n") == TurnStreamHandler.MAX_KEPT_LINES
        await asyncio.sleep(0)

    asyncio.run(scenario())


def test_the_line_time_is_what_datetime_prints() -> None:
    base = 1_796_000_000  # 2026
    fractions = (0.0, 0.0004995, 0.0005, 0.123456, 0.9994999, 0.9995, 0.99999949, 0.9999995, 0.9999996, 0.5)
    moments = [base + second + f for second in range(3) for f in fractions] + [0.0, 1.0, 4_102_444_800.9996]
    for moment in moments:
        expected = datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        assert _utc_iso(moment) == expected, moment
    assert _utc_iso(-1.5) == datetime.fromtimestamp(-1.5, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_flush_kept_lines_writes_what_a_last_turn_kept() -> None:
    """A worker's loop ends and its process exits without atexit: serving flushes what the last turn kept."""
    stream = io.StringIO()
    logger, _ = _logger(stream)

    loop = asyncio.new_event_loop()
    try:
        loop.call_soon(logger.info, "finished")
        loop.call_soon(loop.stop)  # the loop's last turn: the write it scheduled never runs
        loop.run_forever()
    finally:
        loop.close()
    assert stream.getvalue() == ""
    flush_kept_lines()
    assert stream.getvalue() == "finished\n"


def test_now_is_what_datetime_prints_for_the_same_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    """``logs.utc_now_iso``: the sync answer's ``checkedAt`` and the request line's time, as ``results.iso_time``
    prints ``datetime.now(UTC)`` (microseconds cut from the clock's nanoseconds, then milliseconds cut)."""
    base = 1_796_000_000 * 10**9  # 2026
    offsets = (0, 499_999, 999_999, 1_000_000, 123_456_789, 999_999_999, 1_000_000_000, 61_000_500_000)
    # Each again, and back: a millisecond's text is kept for the next call in it, never for another's.
    for offset in (*offsets, *offsets[::-1], 1_000_000_000 + 123_456_789, 123_456_789):
        ns = base + offset
        monkeypatch.setattr(time, "time_ns", lambda ns=ns: ns)
        moment = datetime.fromtimestamp(ns // 10**9, UTC).replace(microsecond=ns // 1000 % 10**6)
        assert utc_now_iso() == iso_time(moment), ns


def test_the_request_lines_struct_has_the_formatters_keys_in_its_order() -> None:
    """``json_line``'s struct is a second list of the request fields: a field added to one must be added to both."""
    assert logs._RequestLine.__struct_fields__ == ("time", "level", "logger", "message", "pid", *logs.REQUEST_FIELDS)
